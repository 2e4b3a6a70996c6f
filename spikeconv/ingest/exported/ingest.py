"""``torch.export`` program -> canonical ANN graph, the same form :func:`~spikeconv.ingest.ingest_module` returns.

An ``ExportedProgram``'s module is an fx graph of ATen ops with weights as ``get_attr`` nodes and
a fixed example batch size. Ingest copies it into a plain graph (no input guards, one output),
folds every computation on constants alone (``aten.t(W)`` of a core-ATen linear layer), scans
every node on data and lists all unsupported ones in one error, rewrites each ATen op into
standard torch with its registered function (:mod:`spikeconv.ingest.exported.ops`), runs the
canonical passes shared with torch models, and finally compares the result with the program
itself on a probe batch.
"""

from __future__ import annotations

import operator
import os

import torch
from torch import fx

from spikeconv.errors import CheckpointError, ConversionError, SpikeconvError, UnsupportedLayerError, first_line
from spikeconv.ingest.canonical import make_canonical_
from spikeconv.ingest.exported import ops as _ops  # noqa: F401  (fills the registry)
from spikeconv.ingest.exported import ops_shapes as _ops_shapes  # noqa: F401  (fills the registry)
from spikeconv.ingest.exported.attention import CANONICAL, prepare_attention_
from spikeconv.ingest.exported.load import load_exported
from spikeconv.ingest.exported.registry import AtenSite, Varying, aten_name, aten_op
from spikeconv.ingest.support import UnsupportedNode, hint_for, raise_unsupported

EXPORT_CHECK_KEY = "spikeconv_export_check"
PROBE_BATCH = 2
PROBE_SEED = 0
_ASSERTS = {"_assert_scalar", "_assert_tensor_metadata", "_assert_async", "sym_constrain_range", "sym_constrain_range_for_size"}


def _is_tensor_valued(node: object) -> bool:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return isinstance(value, torch.Tensor) or (isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value))


def _plain_graph(program: torch.export.ExportedProgram, label: str) -> fx.GraphModule:
    """The program's module as a plain fx graph: no input guards or asserts, one output value."""
    module = program.module()
    graph, env = fx.Graph(), {}
    for node in module.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            continue
        if node.op == "call_function" and aten_name(node.target) in _ASSERTS:
            continue
        if node.op == "output":
            outputs = node.args[0]
            outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
            if len(outputs) != 1:
                raise UnsupportedLayerError(f"{label} returns {len(outputs)} outputs; spikeconv converts classifiers with one output")
            graph.output(env[outputs[0]])
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{label} takes {len(inputs)} inputs; spikeconv converts single-input models")
    return fx.GraphModule(module, graph, "ExportedProgram")


def out_of_place_(gm: fx.GraphModule) -> int:
    """Rewrite in-place ATen ops (``relu_``, ``hardtanh_``, ``add_``) as their functional forms. Returns the count.

    ``torch.export`` keeps the in-place calls of ``nn.ReLU(inplace=True)``, ``nn.ReLU6(inplace=True)`` and
    ``out += identity`` (every torchvision ResNet, VGG, DenseNet and MobileNet). Where the mutated value is an
    intermediate result, ``y = op_(x, ...)`` is ``y = op(x, ...)`` with every later reader of ``x`` reading
    ``y``; a mutation of the input or of a weight is left for the support check to name.

    Before and after, for ``relu_(bn)`` followed by ``add(bn, z)``::

        relu_ = aten.relu_(bn); add = aten.add(bn, z)
        relu_ = aten.relu(bn);  add = aten.add(relu_, z)
    """
    order = {node: index for index, node in enumerate(gm.graph.nodes)}
    count = 0
    for node in list(gm.graph.nodes):
        functional = _functional_variant(node.target) if node.op == "call_function" else None
        target = node.args[0] if node.args else None
        if functional is None or not isinstance(target, fx.Node) or target.op in ("placeholder", "get_attr"):
            continue
        for user in list(target.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(target, node)
        node.target = functional
        count += 1
    return count


def _functional_variant(target: object) -> object | None:
    """``aten.relu.default`` for ``aten.relu_.default``: the same overload of the op without the trailing ``_``."""
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.arguments or schema.arguments[0].alias_info is None:
        return None
    if not schema.arguments[0].alias_info.is_write or not schema.name.endswith("_"):
        return None
    packet = getattr(torch.ops.aten, schema.name.split("::")[-1][:-1], None)
    return getattr(packet, target._overloadname, None) if packet is not None else None


def fold_constants_(gm: fx.GraphModule) -> int:
    """Replace every tensor computed from constants alone by a buffer read (``get_attr``). Returns the count."""
    constant = {n for n in gm.graph.nodes if n.op == "get_attr"}
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not all(n in constant for n in node.all_input_nodes):
            continue
        if not node.all_input_nodes and not _is_tensor_valued(node):
            continue
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: _attribute(gm, str(n.target)))
        with torch.no_grad():
            value = node.target(*args, **kwargs)
        if not isinstance(value, torch.Tensor):
            continue
        name = f"_const_{node.name}"
        gm.register_buffer(name, value.detach().clone())
        with gm.graph.inserting_before(node):
            read = gm.graph.get_attr(name)
        read.meta = dict(node.meta)
        node.replace_all_uses_with(read)
        gm.graph.erase_node(node)
        constant.add(read)
        folded += 1
    return folded


def _attribute(gm: fx.GraphModule, target: str) -> object:
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _data_nodes(gm: fx.GraphModule) -> set[fx.Node]:
    """Tensor-valued nodes that depend on the input (shape arithmetic such as ``sym_size`` is not data)."""
    dependent: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(n in dependent for n in node.all_input_nodes):
            dependent.add(node)
    return {n for n in dependent if n.op == "placeholder" or _is_tensor_valued(n)}


def _label(target: object) -> str:
    name = aten_name(target)
    return f"aten.{name}" if name else getattr(target, "__name__", str(target))


def _problem(node: fx.Node, data: set[fx.Node]) -> str | None:
    """Why a node on data cannot be converted, or ``None``."""
    if node.target is operator.getitem:
        producer = _label(node.args[0].target) if isinstance(node.args[0], fx.Node) else "a tuple"
        if node.args[1] == 0:
            return None
        return f"reads result {node.args[1]} of {producer} (indices, masks or statistics); only the first is converted"
    op = aten_op(aten_name(node.target) or "")
    if op is None:
        return hint_for(_label(node.target))
    positions = _data_positions(node, data)
    if op.varying is Varying.FIRST and positions != [0]:
        return "needs constant weights/parameters (only its first input may carry data)"
    if op.varying is Varying.ONE and len(positions) != 1:
        return "a product of two activations has no rate equivalent; multiply by constants only"
    return op.check(node) if op.check is not None else None


def _data_positions(node: fx.Node, data: set[fx.Node]) -> list[int]:
    """Indices of the arguments that carry data, one entry per use (``x * x`` gives two)."""
    positions = []
    for index, arg in enumerate([*node.args, *node.kwargs.values()]):
        used: list[fx.Node] = []
        fx.node.map_arg(arg, used.append)
        positions += [index] * sum(n in data for n in used)
    return positions


def find_unsupported_exported(gm: fx.GraphModule) -> list[UnsupportedNode]:
    """Every node on data that spikeconv cannot convert, in graph order (after constant folding)."""
    data = _data_nodes(gm)
    found = []
    for node in gm.graph.nodes:
        if node.meta.get(CANONICAL):  # written in standard torch already (attention made batch first)
            continue
        if node in data and node.op == "call_function":
            problem = _problem(node, data)
            if problem is not None:
                found.append(UnsupportedNode(node.name, _label(node.target), problem))
        elif node in data and node.op not in ("placeholder", "output"):
            found.append(UnsupportedNode(node.name, node.op, "no spiking equivalent; see docs/own_model.md"))
    return found


def _rewrite_(gm: fx.GraphModule) -> None:
    data = _data_nodes(gm)
    for node in list(gm.graph.nodes):
        if node in data and node.op == "call_function" and node.target is not operator.getitem and not node._erased \
                and not node.meta.get(CANONICAL):
            aten_op(aten_name(node.target)).rewrite(AtenSite(gm, node))
    gm.graph.eliminate_dead_code()
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_buffers(recurse=False)):
        if name not in used:
            delattr(gm, name)
    gm.delete_all_unused_submodules()
    gm.recompile()


def _probe(gm: fx.GraphModule, label: str, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    """A seeded normal batch shaped like the program's input; symbolic feature sizes come from ``input_shape``."""
    value = next(n for n in gm.graph.nodes if n.op == "placeholder").meta.get("val")
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32:
        raise UnsupportedLayerError(f"the input of {label} is not a float32 tensor; export the model with a float input")
    dims = list(value.shape)
    fixed = [int(d) if isinstance(d, int) else None for d in dims[1:]]
    if input_shape is not None and any(f is not None and f != int(s) for f, s in zip(fixed, input_shape, strict=False)):
        raise UnsupportedLayerError(f"{label} was exported for inputs {tuple(dims[1:])}, not {tuple(input_shape)}; fix the input shape")
    if input_shape is not None and len(input_shape) != len(fixed):
        raise UnsupportedLayerError(f"{label} takes inputs of rank {len(dims)}, not input shape {tuple(input_shape)}")
    if input_shape is None and None in fixed:
        raise UnsupportedLayerError(f"{label} has symbolic input sizes {tuple(dims[1:])}; give the input shape (--input-shape C,H,W)")
    shape = [int(dims[0]) if isinstance(dims[0], int) else PROBE_BATCH, *(f if f is not None else int(s) for f, s in
                                                                        zip(fixed, input_shape or fixed, strict=True))]  # fmt: skip
    return torch.randn(shape, generator=torch.Generator().manual_seed(PROBE_SEED))


def _fixed_batch(program: torch.export.ExportedProgram, label: str, input_shape: tuple[int, ...] | None) -> torch.export.ExportedProgram:
    """``program`` exported again for the probe's fixed shape where it was exported with symbolic sizes (``dynamic_shapes``).

    The attention pass traces token and head layouts through ``view``/``reshape`` calls, whose sizes must then be
    numbers; a symbolic batch left them as graph nodes and every ViT exported with a dynamic batch was refused. The
    batch size of the export is not kept either way (the canonical graph runs any batch)."""
    user_inputs = set(program.graph_signature.user_inputs)
    value = next((n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs), None)
    if not isinstance(value, torch.Tensor) or all(isinstance(d, int) for d in value.shape):
        return program  # fixed sizes (or an input _probe refuses): nothing to do, and no module unlifted for it
    module = program.module()
    probe = _probe(module, label, input_shape)
    with torch.no_grad():
        return torch.export.export(module, (probe,))


def _check(gm: fx.GraphModule, program: torch.export.ExportedProgram, probe: torch.Tensor, rtol: float, label: str) -> dict:
    with torch.no_grad():
        expected, actual = program.module()(probe), gm(probe)
    diff = float((actual.double() - expected.double()).abs().max())
    scale = float(expected.abs().max())
    if tuple(actual.shape) != tuple(expected.shape) or diff > rtol * max(scale, 1e-12):
        raise ConversionError(f"imported graph of {label} differs from the exported program by {diff:.3g} (max |output| {scale:.3g}); "
                              "please report this model")  # fmt: skip
    return {"max_abs_diff": diff, "max_abs_reference": scale, "rtol": rtol, "probe_shape": list(probe.shape)}


def ingest_exported(
    source: torch.export.ExportedProgram | str | os.PathLike | bytes,
    *,
    input_shape: tuple[int, ...] | None = None,
    trust_pickle: bool = False,
    rtol: float = 1e-4,
    label: str | None = None,
) -> fx.GraphModule:
    """Import a ``torch.export`` program as spikeconv's canonical ANN graph.

    Args:
        source: An ``ExportedProgram``, a ``.pt2`` path (``torch.export.save``), or its bytes.
        input_shape: Per-sample input shape, needed only where the program's is symbolic.
        trust_pickle: Load ``.pt2`` parts that would be unpickled (see :mod:`~spikeconv.ingest.exported.load`).
        rtol: Largest accepted ``max|graph − program|`` relative to ``max|program|`` on the probe.
        label: How messages name the program (e.g. the user's file, or the SNN file embedding it).

    Returns:
        The canonical graph; ``gm.meta["spikeconv_export_check"]`` holds the probe shape and the
        measured difference. The batch size of the export is not kept: any batch runs.

    Raises:
        CheckpointError: The file is missing, not an archive, or holds pickled parts.
        UnsupportedLayerError: Listing every node that cannot be converted.
        ConversionError: The imported graph does not match the program within ``rtol``.
    """
    if isinstance(source, torch.export.ExportedProgram):
        program, label = source, label or "the exported program"
    else:
        program, label = load_exported(source, trust_pickle=trust_pickle, label=label)
    try:
        program = _fixed_batch(program, label, input_shape)
        gm = _plain_graph(program, label)
        out_of_place_(gm)
        probe = _probe(gm, label, input_shape)
        fold_constants_(gm)
        prepare_attention_(gm)  # transformers: attention regions batch first (ingest/exported/attention.py)
        raise_unsupported(find_unsupported_exported(gm), label)
        _rewrite_(gm)
        gm = make_canonical_(gm, where=label)
        gm.meta[EXPORT_CHECK_KEY] = _check(gm, program, probe, rtol, label)
    except SpikeconvError:
        raise
    except Exception as exc:  # a damaged graph deserialises and fails later: folding its constants, the probe run
        raise CheckpointError(f"{label} is not a usable torch.export program ({type(exc).__name__}: {first_line(exc)}); "
                              "export it again with torch.export.export") from None  # fmt: skip
    return gm
