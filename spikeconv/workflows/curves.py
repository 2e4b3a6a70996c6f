"""Several SNN files on the same test data: one table, one JSON, one overlaid plot.

``spikeconv curve A.pt B.pt C.pt --plot p.png`` compares conversion methods (or a conversion
with a directly trained SNN) on identical samples; each curve is computed exactly as
:func:`spikeconv.workflows.curve.curve_job` computes a single one.

Beside a converted SNN's simulated curve come, when asked or implied, two curves of the same conversion:

- ``--rate-code``: the accuracy of :func:`spikeconv.convert.rate_code_ann` at T = 1, 2, 4, ..., T on the
  same samples, one ANN pass per T instead of a simulation. Where the simulated curve lies below it, the
  loss is timing (transients, spikes of inactivated neurons); the ideal curve's own gap to the ANN is the
  code's resolution.
- an SNN converted with ``--weight-bits``: the same conversion with float weights. The SNN file holds the
  integer weights; its calibrated ANN graph, plan and settings rebuild the float network exactly as it was
  before quantisation (the same folded thresholds and corrections), which is then simulated on the same
  samples, so the table shows what the integer grid costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from spikeconv._io import output_set
from spikeconv._outputs import check_outputs
from spikeconv.convert import ConvertConfig, convert, rate_code_ann
from spikeconv.data import Split, make_loader
from spikeconv.errors import ConfigError
from spikeconv.evaluation import CurveResult, MemoryBudget, check_curve_memory, default_table_points, plot_curves, write_curve_json
from spikeconv.files import LoadedSnn, load_snn
from spikeconv.workflows.curve import CurveJob, curve_of_loaded
from spikeconv.workflows.jobs import write_main


def curve_label(path: Path, info: dict) -> str:
    """``file (method)`` for converted SNNs that record their method, else the file name; for ``--method auto``
    what it chose: ``file (auto: calibrated + per-channel + signed, T = 3)``."""
    auto = info.get("auto")
    chosen = auto.get("chosen") if isinstance(auto, dict) else None
    if isinstance(chosen, dict) and "variant" in chosen and "timesteps" in chosen:
        return f"{path.name} (auto: {chosen['variant']}, T = {chosen['timesteps']})"
    method = info.get("method")
    return f"{path.name} ({method})" if method else path.name


def curves_job(snns: Sequence[Path], job: CurveJob, *, progress: bool = True) -> list[CurveResult]:
    """The curve of every file in ``snns`` with ``job``'s data and T; outputs hold all of them.

    With one file the JSON keeps the single-curve layout of :func:`curve_job`; with several it is
    the ``"curves"`` layout of :func:`spikeconv.evaluation.write_curve_json`. Every file is
    loaded (and checked against the data) before the first simulation starts.

    With ``job.rate_code`` every converted SNN's curve is followed by its ideal rate code's
    (:func:`rate_code_curve`); directly trained SNNs have none.

    Raises:
        ConfigError: No SNN file, the same file twice, or ``rate_code`` without a converted SNN.
        OutputError: ``--json`` or ``--plot`` is an SNN file, a folder, the other output, or not
            writable (checked before any file is read).
    """
    paths = [Path(p) for p in snns]
    if not paths:
        raise ConfigError("give at least one SNN file")
    if len({p.resolve() for p in paths}) != len(paths):
        raise ConfigError("the same SNN file is given twice")
    check_outputs({"--json": job.json_path, "--plot": job.plot_path}, [*paths, *job.data.input_files()])
    check_curve_memory(job.timesteps, budget=MemoryBudget())  # an absurd T fails before any file is read
    loaded = [load_snn(p) for p in paths]
    if job.rate_code and all(snn.calibrated is None for snn in loaded):
        raise ConfigError("--rate-code needs at least one converted SNN; these were all trained directly")
    several = len(paths) > 1 or job.rate_code or any(integer_bits(snn) is not None for snn in loaded)
    results = []
    for path, snn in zip(paths, loaded, strict=True):
        single = replace(job, snn=path, json_path=None, plot_path=None)
        result = curve_of_loaded(snn, single, progress=progress)
        results.append(replace(result, label=curve_label(path, snn.info)) if several else result)
        own = results[-1]
        if job.rate_code and snn.calibrated is not None:
            results.append(rate_code_curve(snn, single, result))
        if integer_bits(snn) is not None:  # --weight-bits: the float-weight network beside it
            results.append(float_weights_curve(snn, single, own))
    write_main(lambda: _write_outputs(results, paths, job))
    return results


def _write_outputs(results: list[CurveResult], paths: list[Path], job: CurveJob) -> None:
    with output_set():  # the JSON and the plot appear together or not at all
        if job.json_path is not None:
            write_curve_json(results[0] if len(results) == 1 else results, job.json_path)
        if job.plot_path is not None:
            title = f"{paths[0].name} on {job.data.name}" if len(paths) == 1 else f"{len(paths)} SNNs on {job.data.name}"
            plot_curves(results, job.plot_path, title=title)


def rate_code_accuracy(loaded: LoadedSnn, data, steps: Sequence[int], *, batch_size: int = 256) -> list[float]:
    """Accuracy (percent) of the ideal ``T``-step rate code of ``loaded``'s conversion, per T in ``steps``."""
    if loaded.calibrated is None:
        raise ConfigError("the ideal rate code needs a converted SNN; this one was trained directly")
    config = ConvertConfig.from_dict(loaded.snn.metadata["convert"])
    graphs = [rate_code_ann(loaded.calibrated, t, config) for t in steps]
    correct = torch.zeros(len(steps), dtype=torch.long)
    seen = 0
    device = next(iter(loaded.snn.parameters()), torch.empty(0)).device  # where --device put the network
    graphs = [graph.to(device) for graph in graphs]
    with torch.inference_mode():
        for x, y in make_loader(data, batch_size=batch_size, shuffle=False):
            x = x.to(device)
            for i, graph in enumerate(graphs):
                correct[i] += (graph(x).argmax(1).cpu() == y).sum()
            seen += y.numel()
    return [100.0 * int(c) / seen for c in correct]


def rate_code_curve(loaded: LoadedSnn, job: CurveJob, simulated: CurveResult) -> CurveResult:
    """The ideal rate code's accuracy at T = 1, 2, 4, ..., ``job.timesteps``, on ``simulated``'s samples."""
    data = job.data.load(Split.TEST, job.limit, input_shape=tuple(loaded.info["input_shape"]))
    steps = default_table_points(job.timesteps)
    accuracy = rate_code_accuracy(loaded, data, steps, batch_size=job.batch_size)
    return CurveResult(timesteps=tuple(steps), accuracy=tuple(accuracy), ann_accuracy=simulated.ann_accuracy,
                       num_samples=simulated.num_samples, label=f"ideal rate code ({job.snn.name})",
                       extra={"kind": "rate_code_ann", "snn": str(job.snn)})  # fmt: skip


def integer_bits(loaded: LoadedSnn) -> int | None:
    """The ``--weight-bits`` a converted SNN was made with (None: float weights, or not converted)."""
    record = (loaded.snn.metadata or {}).get("convert", {}) if isinstance(loaded.snn.metadata, dict) else {}
    bits = record.get("weight_bits") if isinstance(record, dict) else None
    return int(bits) if bits is not None and loaded.calibrated is not None else None


def float_weights_curve(loaded: LoadedSnn, job, result: CurveResult) -> CurveResult:
    """The curve of ``loaded``'s conversion with float weights, labelled beside ``result`` (same data, T, device)."""
    config = replace(ConvertConfig.from_dict(loaded.snn.metadata["convert"]), weight_bits=None)
    floats = convert(loaded.calibrated, config).eval()
    curve = curve_of_loaded(replace(loaded, snn=floats), job, progress=False)
    return replace(curve, label=f"{result.label} with float weights")
