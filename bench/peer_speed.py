"""Simulation speed of spikeconv against SpikingJelly 2.0 and sinabs, side by side in one process.

Every simulator runs the same trained network on the same batch of Fashion-MNIST test images, in
one process, with the same number of threads, timed round-robin (one forward of each runner per
round, so load changes on a shared machine hit all of them alike). Reported per runner: the median
images per second, and the ratio to ``T`` ANN forwards (``time / (T × ANN time)``; the dense floor
is about 1.0). Networks: the shipped ``fmnist-cnn`` and ``resnet-mp``, a small residual network
with a max pool (stem 16C3 + max pool, two BasicBlocks, global average pool; seeded random weights
with BatchNorm statistics from 2,000 training images: the dense simulation cost does not depend on
the training). An entry of ``--nets`` that is a file path is loaded as ``spikeconv convert`` loads it
(e.g. an ONNX CNN trained outside the project).

Runners:

- spikeconv: every conversion method (``rate``, ``calibrated``, ``calibrated`` + signed / ISI
  neurons, ``calibrated-light``, ``burst``, ``bsnn``), converted in-process on 2,000 training images.
- SpikingJelly 2.0: ``ann2snn.FXConverter`` (``RateCodingRecipe``, soft-reset ``IFNode``), run
  single-step (a Python loop over T, its conversion default) and multi-step (``step_mode="m"``,
  stateless layers wrapped in ``SeqToANNContainer``, the ``[T, N, ...]`` input at once).
- sinabs: ``sinabs.from_model`` (``IAFSqueeze``: time folded into the batch, its fastest CPU mode),
  membrane-subtract reset, ``MultiSpike`` and ``SingleSpike``.

The peers are never spikeconv dependencies. Unless they import, the script makes a separate venv
(``--peer-venv``, plain ``python -m venv``, no system site packages) that sees this interpreter's
packages through one ``.pth`` line (so torch 2.14.1 and spikeconv are shared and nothing large is
downloaded, and the project's venv is not touched), installs ``spikingjelly==2.0.0`` and
``sinabs`` there without dependencies (plus the small pure-Python packages they import:
``loguru``, ``pbr``, ``requests`` and its four; ``torch==2.14.1`` is pinned as a constraint), and
re-runs itself with that venv's python.

Usage:
    python bench/peer_speed.py [--timesteps 4,32] [--nets fmnist-cnn,resnet-mp] [--batch 256] [--threads 2]
        [--repeats 5] [--json bench/results/peer_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PEERS = ["spikingjelly==2.0.0", "sinabs", "loguru", "pbr", "requests", "urllib3", "idna", "certifi", "charset-normalizer"]


def _peers_importable() -> bool:
    try:
        import sinabs  # noqa: F401
        import spikingjelly.activation_based  # noqa: F401
    except ImportError:
        return False
    return True


def ensure_peer_venv(venv: Path) -> None:
    """Make the peer venv if needed and re-execute this script in it (never returns then)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
        ours = sysconfig.get_paths()["purelib"]
        # addsitedir (not a bare path) so that this venv's own .pth files (the editable spikeconv) apply too
        Path(site_dir, "_spikeconv_host.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
        constraints = venv / "constraints.txt"
        constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-c", str(constraints), *PEERS], check=True)
    if Path(sys.prefix).resolve() != venv.resolve():  # (both venvs' python may link to one interpreter binary)
        os.execv(str(python), [str(python), *sys.argv])


# ---------------------------------------------------------------------------------------------
# networks


def resnet_mp(num_classes: int = 10) -> nn.Sequential:
    """``16C3-BN-ReLU-M2``, BasicBlock(16), BasicBlock(16→32, stride 2), global average pool, FC."""
    from spikeconv.models.resnet import BasicBlock

    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 16, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(16)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)), ("block1", BasicBlock(16, 16)), ("block2", BasicBlock(16, 32, stride=2)),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(32, num_classes)),
    ]))  # fmt: skip


def load_network(name: str, calib: torch.Tensor) -> nn.Module:
    """A named network, or any ANN file ``spikeconv convert`` reads on its own (an ONNX file trained elsewhere)."""
    from spikeconv.workflows import load_ann, pretrained_path

    if name == "fmnist-cnn":
        return load_ann(pretrained_path()).model.eval()
    if Path(name).is_file():
        return load_ann(Path(name)).model.eval()
    model = resnet_mp()
    model.train()
    with torch.no_grad():  # BatchNorm statistics of real images, so every layer sees sensible currents
        for _ in range(3):
            for chunk in calib.split(500):
                model(chunk)
    return model.eval()


def _without_normalisation(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """(input normalisation, the rest): the peers' converters refuse arithmetic on the input, so it runs outside."""
    children = list(model.named_children())
    if children and type(children[0][1]).__name__ == "InputNormalization":
        return children[0][1], nn.Sequential(OrderedDict(children[1:]))
    if isinstance(model, torch.fx.GraphModule):
        return _strip_leading_constants(model)
    return (lambda x: x), model


def _strip_leading_constants(model: torch.fx.GraphModule) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """An ONNX graph's leading ``(x − mean) / std`` nodes (sub/div by stored constants), cut off and returned as
    a function; the graph after them is unchanged."""
    import operator
    from functools import reduce

    body = copy.deepcopy(model)
    source = next(node for node in body.graph.nodes if node.op == "placeholder")
    steps: list[tuple[Callable, torch.Tensor]] = []
    while len(source.users) == 1:
        (user,) = source.users
        constant = user.args[1] if len(user.args) == 2 else None
        if not (user.op == "call_function" and user.target in (operator.sub, operator.truediv) and user.args[0] is source
                and isinstance(constant, torch.fx.Node) and constant.op == "get_attr"):  # fmt: skip
            break
        steps.append((user.target, operator.attrgetter(constant.target)(body).detach().clone()))
        user.replace_all_uses_with(source)
        body.graph.erase_node(user)
    body.graph.eliminate_dead_code()
    body.recompile()
    return (lambda x: reduce(lambda value, step: step[0](value, step[1]), steps, x)), body


# ---------------------------------------------------------------------------------------------
# runners: each returns fn(x, T) -> output


METHODS = {
    "rate": ("rate", "none"),
    "calibrated": ("calibrated", "none"),
    "calibrated + signed": ("calibrated", "signed"),
    "calibrated + isi": ("calibrated", "isi"),
    "calibrated-light": ("calibrated-light", "none"),
    "burst": ("burst", "none"),
    "bsnn": ("bsnn", "none"),
}


def spikeconv_runner(model: nn.Module, calib_batches: list[torch.Tensor], method: str, sin: str, target: int):
    import spikeconv
    from spikeconv.convert import ConvertConfig
    from spikeconv.neurons import SinCorrection

    config = ConvertConfig(sin_correction=SinCorrection.from_name(sin))
    snn = spikeconv.convert(model, calib_batches, method=method, timesteps=target, config=config).eval()
    return lambda x, steps: snn(x, steps)


def _sj_multistep_(snn: nn.Module) -> None:
    """SpikingJelly multi-step: neurons in step mode "m", stateless layers wrapped to fold T into N."""
    from spikingjelly.activation_based import base, layer

    stateless = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)
    for name, module in list(snn.named_modules()):
        if isinstance(module, base.StepModule):
            module.step_mode = "m"
        elif isinstance(module, stateless) and name:
            parent_name, _, child = name.rpartition(".")
            parent = snn.get_submodule(parent_name) if parent_name else snn
            setattr(parent, child, layer.SeqToANNContainer(module))


def spikingjelly_runner(model: nn.Module, calib: torch.Tensor, multi_step: bool):
    from spikingjelly.activation_based import ann2snn, functional

    normalise, body = _without_normalisation(model)
    loader = [(normalise(chunk), None) for chunk in calib[:1000].split(250)]
    snn = ann2snn.FXConverter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%"), device="cpu").convert(
        copy.deepcopy(body)).eval()  # fmt: skip
    if multi_step:
        _sj_multistep_(snn)
        snn.recompile() if hasattr(snn, "recompile") else None

    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        functional.reset_net(snn)
        x = normalise(x)
        if multi_step:
            return snn(x.unsqueeze(0).expand(steps, *x.shape))
        return torch.stack([snn(x) for _ in range(steps)])

    return run


def sinabs_runner(model: nn.Module, calib: torch.Tensor, single_spike: bool):
    import sinabs
    from sinabs.activation import MembraneSubtract, MultiSpike, SingleSpike

    normalise, body = _without_normalisation(model)
    made: dict[int, nn.Module] = {}

    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        if steps not in made:  # IAFSqueeze folds T into the batch, so the model is built per T
            network = sinabs.from_model(copy.deepcopy(body), input_shape=tuple(x.shape[1:]), spike_threshold=torch.tensor(1.0),
                                        spike_fn=SingleSpike if single_spike else MultiSpike, reset_fn=MembraneSubtract(),
                                        num_timesteps=steps)  # fmt: skip
            made[steps] = network.spiking_model.eval()
        snn = made[steps]
        sinabs.reset_states(snn)
        x = normalise(x)
        repeated = x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).reshape(-1, *x.shape[1:])
        return snn(repeated)

    return run


# ---------------------------------------------------------------------------------------------


def round_robin(runners: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per runner; each round calls every runner once, in a rotating order."""
    names = list(runners)
    for name in names:  # warm-up: allocator, kernels, the C++ extension's first load
        runners[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", default="4,32", help="comma-separated T values")
    parser.add_argument("--nets", default="fmnist-cnn,resnet-mp")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=int, default=8, help="the T that calibrated methods optimise for")
    parser.add_argument("--only", default=None, help="runner names separated by semicolons (ANN is always timed)")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/spikeconv-peer-venv"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not _peers_importable():
        ensure_peer_venv(args.peer_venv)
    torch.set_num_threads(args.threads)

    import spikeconv

    train = spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TRAIN)
    from spikeconv.data import calibration_subset

    subset = calibration_subset(train, num_samples=2000, seed=0)
    calib = torch.stack([subset[i][0] for i in range(len(subset))])
    x = spikeconv.load_dataset("fashion-mnist", split=spikeconv.Split.TEST, limit=args.batch).as_tensors()[0]
    steps_list = [int(t) for t in args.timesteps.split(",")]
    wanted = None if args.only is None else {name.strip() for name in args.only.split(";")}
    load = os.getloadavg()
    results: dict = {}
    for net in args.nets.split(","):
        model = load_network(net, calib)
        calib_batches = list(calib.split(250))
        makers: dict[str, Callable[[], Callable]] = {
            f"spikeconv {label}": (lambda m=method, s=sin, a=model, b=calib_batches: spikeconv_runner(a, b, m, s, args.target))
            for label, (method, sin) in METHODS.items()
        }
        makers["SpikingJelly single-step"] = lambda a=model: spikingjelly_runner(a, calib, multi_step=False)
        makers["SpikingJelly multi-step"] = lambda a=model: spikingjelly_runner(a, calib, multi_step=True)
        makers["sinabs MultiSpike"] = lambda a=model: sinabs_runner(a, calib, False)
        makers["sinabs SingleSpike"] = lambda a=model: sinabs_runner(a, calib, True)
        built = {}
        for name, make in makers.items():
            if wanted is not None and name not in wanted:
                continue
            try:
                built[name] = make()
            except Exception as error:  # noqa: BLE001 - a runner that cannot build this network is reported, not fatal
                print(f"{net}: {name} skipped: {type(error).__name__}: {str(error).splitlines()[0][:200]}", flush=True)
        for steps in steps_list:
            with torch.inference_mode():
                calls = {"ANN": lambda a=model: a(x)}
                calls.update({name: (lambda r=run, t=steps: r(x, t)) for name, run in built.items()})
                seconds = round_robin(calls, args.repeats)
            ann = seconds["ANN"]
            rows = {name: {"ms": round(s * 1e3, 1), "img_per_s": round(args.batch / s, 1), "ratio_to_T_ann": round(s / (steps * ann), 3)}
                    for name, s in seconds.items()}  # fmt: skip
            sj = seconds.get("SpikingJelly single-step")
            rows["ANN"]["ratio_to_T_ann"] = None  # (one ANN forward is the unit)
            for name, row in rows.items():
                row["speedup_vs_sj_single"] = round(sj / seconds[name], 2) if sj else None
            results[f"{net} T={steps}"] = rows
            print(f"\n{net}, T = {steps}, batch {args.batch}, {args.threads} threads (load {os.getloadavg()[0]:.2f})")
            print("| runner | img/s | ratio to T x ANN | x SpikingJelly single-step |")
            print("|---|---|---|---|")
            for name, row in rows.items():
                ratio = "" if row["ratio_to_T_ann"] is None else f"{row['ratio_to_T_ann']:.3f}"
                print(f"| {name} | {row['img_per_s']:,.1f} | {ratio} | {row['speedup_vs_sj_single']} |", flush=True)
    versions = {"torch": torch.__version__}
    for package in ("spikingjelly", "sinabs"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001
            versions[package] = None
    record = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads",
              "load_average_start": [round(v, 2) for v in load], "load_average_end": [round(v, 2) for v in os.getloadavg()],
              "versions": versions, "settings": {k: str(v) for k, v in vars(args).items()}, "results": results}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
