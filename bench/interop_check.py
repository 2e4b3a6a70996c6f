"""Do the consumer libraries run spikeconv's exports as spikeconv does? Their own importers, their own venvs.

For every target (``nir``, ``sinabs``, ``snntorch``, ``spikingjelly``, ``norse``) and network (the
shipped ``fmnist-cnn`` and a residual network with max pooling trained here by a plain torch loop,
outside spikeconv, and read from its ONNX file), the script runs what a user runs::

    spikeconv convert MODEL --method calibrated-light --per-channel --target-timesteps T --target X --out X.snn.pt
    spikeconv curve X.snn.pt --timesteps T --limit N --json X.curve.json
    spikeconv export X.snn.pt --target X --out X.nir

and then ``bench/interop_consumer.py run X X.nir`` in that library's venv (its importer, unmodified)
on the same first N test images, and compares the accuracy after every step t = 1..T. ``nir`` is the
exact file of a plain ``--method calibrated --maxpool average`` conversion, run by nirtorch's executor with NIR's
equations. A target that refuses a network says so in one line, which is recorded.

The libraries are never spikeconv dependencies: each gets its own venv under ``--venv-root``
(pinned versions; the venvs see this interpreter's site-packages through a ``.pth`` file, so torch
is not downloaded again; pip reaches PyPI for the rest). Before the networks, ``interop_consumer.py
probe`` runs tiny graphs through each importer and the conventions found are compared with the ones
the targets are written for (``EXPECTED``); a mismatch fails the check.

Usage:
    python bench/interop_check.py [--targets nir,sinabs,snntorch,spikingjelly,norse] [--nets cnn,resnet]
        [--limit 2000] [--timesteps 8] [--work /tmp/spikeconv-interop-work] [--json bench/results/interop.json]
    python bench/interop_check.py --quick --targets sinabs       # the test suite's run: probes + the CNN on 64 images
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSUMER = ROOT / "bench" / "interop_consumer.py"
VENV_ROOT = Path(os.environ.get("SPIKECONV_INTEROP_VENVS", "/tmp/spikeconv-interop"))
PINNED_NIR = ["nir==1.0.8", "nirtorch==2.6"]
PACKAGES = {  # what a user installs; sinabs 3.1.3 pins nir <= 1.0.4 itself (pip then picks nirtorch 2.0.2)
    "sinabs": ["sinabs==3.1.3"],
    "snntorch": ["snntorch==1.0.0", *PINNED_NIR],  # snnTorch declares no dependencies; its importer needs nir, nirtorch
    "spikingjelly": ["spikingjelly[nir]==2.0.0", *PINNED_NIR],
    "norse": ["norse==1.1.0", *PINNED_NIR],
    "nirtorch": PINNED_NIR,
}
LIBRARY = {"nir": "nirtorch", "sinabs": "sinabs", "snntorch": "snntorch", "spikingjelly": "spikingjelly", "norse": "norse"}
TOLERANCE = 0.25  # points on the compared images: identical up to float rounding

# What each importer does with the probe graphs (interop_consumer.py), i.e. the conventions the targets are written for.
# dynamics columns: input exactly θ | 0.7θ per step | 2.5θ once | −3θ then 2.5θ | 0.999θ; threshold θ = 1
_HARD_ABOVE = [[0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]  # v > θ, reset to 0, one spike
EXPECTED = {
    "sinabs": {"dynamics": [[1, 0, 2, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]],  # v >= θ, subtract, ⌊v/θ⌋, floor −θ
               "v_reset_0.3": [[0], [0], [1], [0]], "per_neuron_threshold": [[1, 0]], "flatten": [3, 2],
               "residual": [2, 0, 0], "residual_with_shortcut_layer": [1, 0, 0], "plain_if": [[1], [0]]},
    "snntorch": {"dynamics": _HARD_ABOVE, "v_reset_0.3": [[0], [0], [1], [0]], "per_neuron_threshold": "AssertionError",
                 "plain_if": "TypeError",  # its IF map returns (spikes, membrane) into the next layer
                 "flatten": "RuntimeError", "residual": [2, 0, 0], "residual_with_shortcut_layer": [2, 0, 0]},
    "norse": {"dynamics": _HARD_ABOVE, "v_reset_0.3": [[0], [0], [1], [0]], "per_neuron_threshold": [[1, 0]], "plain_if": [[1], [0]],
              "flatten": "RuntimeError", "residual": [2, 0, 0], "residual_with_shortcut_layer": [1, 0, 0]},
    "spikingjelly": {"dynamics": [[1, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]],  # v >= θ, reset to v_reset
                     "v_reset_0.3": [[1], [0], [1], [0]], "per_neuron_threshold": "ValueError", "flatten": [3, 2],
                     "plain_if": "ValueError",  # r must equal 1/dt
                     "residual": [2, 0, 0], "residual_with_shortcut_layer": [2, 0, 0]},
    "nirtorch": {"dynamics": _HARD_ABOVE, "v_reset_0.3": [[0], [0], [1], [0]], "per_neuron_threshold": [[1, 0]], "plain_if": [[1], [0]],
                 "flatten": [3, 2], "residual": [2, 0, 0], "residual_with_shortcut_layer": [2, 0, 0]},
}  # fmt: skip


# --------------------------------------------------------------------------------------------- venvs


def venv_python(library: str, root: Path = VENV_ROOT) -> Path:
    return root / library / "bin" / "python"


def ensure_venv(library: str, root: Path) -> Path:
    """The library's venv (made if missing): pinned packages, this interpreter's site-packages seen through a .pth."""
    python = venv_python(library, root)
    if python.exists():
        return python
    venv = python.parents[1]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
    Path(site_dir, "_spikeconv_host.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    own = ("spikeconv", "nir==", "nirtorch==", "-e ")
    constraints = venv / "constraints.txt"  # everything this venv already has stays as it is (torch above all)
    constraints.write_text("".join(line + "\n" for line in frozen.splitlines() if not line.lower().startswith(own)))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), *PACKAGES[library]], check=True)
    pinned = [p for p in PACKAGES[library] if p in PINNED_NIR]
    if pinned:  # its own copies, so that spikeconv's nir/nirtorch versions never leak into the library's
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", *pinned], check=True)
    return python


# --------------------------------------------------------------------------------------------- networks


def train_residual(path: Path, *, epochs: int = 2, seed: int = 0) -> dict:
    """A small residual network with max pooling, trained by a plain torch loop (no spikeconv), saved as ONNX."""
    import torch
    from torch import nn

    from spikeconv.data import Split, load_dataset  # the data set reader only

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))  # fmt: skip

        def forward(self, x):
            return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          Block(16, 16, 1), Block(16, 32, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))  # fmt: skip
    train, test = load_dataset("fashion-mnist", split=Split.TRAIN), load_dataset("fashion-mnist", split=Split.TEST)
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=4e-3, total_steps=epochs * len(loader))
    started = time.time()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        right = sum(int((model(x).argmax(1) == y).sum()) for x, y in torch.utils.data.DataLoader(test, batch_size=1000))
    torch.onnx.export(model, (torch.rand(1, 1, 28, 28),), str(path), dynamo=False)
    return {"test_accuracy": round(100.0 * right / len(test), 2), "epochs": epochs, "train_seconds": round(time.time() - started, 1)}


# --------------------------------------------------------------------------------------------- one target x network


def _spikeconv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeconv", *args], capture_output=True, text=True)


def _refusal(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith("error:")]
    return lines[-1] if lines else (done.stderr or done.stdout).strip().splitlines()[-1]


def check_one(target: str, model: Path, work: Path, images: Path, args, extra: tuple[str, ...] = ()) -> dict:
    """convert --target, spikeconv's curve, export --target, the library's run: the two accuracy rows."""
    tag = f"{target}{'-' + '-'.join(a.strip('-') for a in extra) if extra else ''}-{model.stem}"
    snn, nir_file, curve = work / f"{tag}.snn.pt", work / f"{tag}.nir", work / f"{tag}.curve.json"
    for stale in (snn, nir_file, curve):
        stale.unlink(missing_ok=True)
    # the exact file: a plain conversion (its max pooling averaged: NIR has no spiking max-pool gate)
    method = ["--method", "calibrated", "--maxpool", "average"] if target == "nir" else ["--method", "calibrated-light", "--per-channel"]
    convert = ["convert", str(model), *method, "--target-timesteps", str(args.timesteps), "--calib-samples", str(args.calib),
               "--correction-samples", str(min(512, args.calib)), "--target", target, *extra, "--out", str(snn)]  # fmt: skip
    row: dict = {"target": target, "network": model.stem, "options": list(extra), "convert": "spikeconv " + " ".join(convert)}
    steps = [convert, ["curve", str(snn), "--timesteps", str(args.timesteps), "--limit", str(args.limit), "--json", str(curve)],
             ["export", str(snn), "--target", target, "--out", str(nir_file)]]  # fmt: skip
    for step in steps:
        done = _spikeconv(*step)
        if done.returncode != 0:
            row["refused"] = f"spikeconv {step[0]}: {_refusal(done)}"
            return row
    result = json.loads(curve.read_text())
    curves = result.get("curves", [result])
    row["spikeconv"] = [round(float(a), 2) for a in curves[0]["accuracy"]]
    if len(curves) > 1:
        row["spikeconv_float_weights"] = [round(float(a), 2) for a in curves[-1]["accuracy"]]
    out = work / f"{tag}.{target}.json"
    python = venv_python(LIBRARY[target], args.venv_root)
    done = subprocess.run([str(python), str(CONSUMER), "run", LIBRARY[target], str(nir_file), str(images), "--timesteps",
                           str(args.timesteps), "--threads", str(args.threads), "--out", str(out),
                           *(["--accumulated"] if target == "nir" else [])], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        row["library_failed"] = (done.stderr.strip().splitlines() or ["?"])[-1]
        return row
    ran = json.loads(out.read_text())
    row["library"], row["versions"] = ran["accuracy"], ran["versions"]
    row["largest_difference"] = round(max(abs(a - b) for a, b in zip(row["library"], row["spikeconv"], strict=True)), 2)
    row["agrees"] = row["largest_difference"] <= TOLERANCE
    return row


def _images(path: Path, limit: int) -> None:
    import numpy as np
    import torch

    from spikeconv.data import Split, load_dataset

    test = load_dataset("fashion-mnist", split=Split.TEST, limit=limit)
    loader = torch.utils.data.DataLoader(test, batch_size=1000)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in loader], strict=True)
    np.savez(path, x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys).astype(np.int64))


def probe(library: str, work: Path, root: Path) -> dict:
    out = work / f"probe-{library}.json"
    subprocess.run([str(venv_python(library, root)), str(CONSUMER), "probe", library, "--out", str(out)], check=True,
                   capture_output=True, text=True)  # fmt: skip
    found = json.loads(out.read_text())
    mismatches = []
    for key, expected in EXPECTED[library].items():
        got = found.get(key)
        same = got.startswith(expected) if isinstance(expected, str) and isinstance(got, str) else got == expected
        if not same:
            mismatches.append(f"{key}: expected {expected}, got {got}")
    return {"library": library, "versions": found["versions"], "found": found, "mismatches": mismatches}


# --------------------------------------------------------------------------------------------- main


def _markdown(report: dict) -> str:
    t = report["timesteps"]
    lines = ["| target (library) | network | " + " | ".join(f"T = {i}" for i in range(1, t + 1)) + " | largest difference |",
             "|---|---|" + "--:|" * t + "--:|"]  # fmt: skip
    for row in report["rows"]:
        name = f"{row['target']} {' '.join(row['options'])}".strip()
        if "refused" in row or "library_failed" in row:
            why = row.get("refused", row.get("library_failed"))
            lines.append(f"| {name} | {row['network']} | " + " | ".join([""] * t) + f" | {why} |")
            continue
        cells = [f"{a:.2f} / {b:.2f}" for a, b in zip(row["spikeconv"], row["library"], strict=True)]
        lines.append(f"| {name} | {row['network']} | " + " | ".join(cells) + f" | {row['largest_difference']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="nir,sinabs,snntorch,spikingjelly,norse")
    parser.add_argument("--nets", default="cnn,resnet")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--calib", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv-root", type=Path, default=VENV_ROOT)
    parser.add_argument("--work", type=Path, default=Path("/tmp/spikeconv-interop-work"))
    parser.add_argument("--weight-bits", default="sinabs", help="targets also checked with --weight-bits 8 (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="probes, and the CNN on 64 images at T = 1..3 (the test suite's run)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.nets, args.limit, args.timesteps, args.calib, args.threads = "cnn", 64, 3, 128, 1
    targets = [t for t in args.targets.split(",") if t]
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    report: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                    "images": args.limit, "timesteps": args.timesteps, "tolerance": TOLERANCE, "probes": [], "rows": []}  # fmt: skip
    for library in dict.fromkeys(LIBRARY[t] for t in targets):
        ensure_venv(library, args.venv_root)
        report["probes"].append(probe(library, args.work, args.venv_root))
    images = args.work / f"fashion-mnist-test-{args.limit}.npz"
    if not images.exists():
        _images(images, args.limit)
    models = {}
    if "cnn" in args.nets:
        models["cnn"] = ROOT / "spikeconv" / "models" / "pretrained" / "fmnist-cnn.pt"
    if "resnet" in args.nets:
        models["resnet"] = args.work / "resnet-mp.onnx"
        if not models["resnet"].exists():
            report["resnet_training"] = train_residual(models["resnet"])
    bits_for = set(args.weight_bits.split(",")) if args.weight_bits and not args.quick else set()
    for model in models.values():
        for target in targets:
            rows = [check_one(target, model, args.work, images, args)]
            if target in bits_for:
                rows.append(check_one(target, model, args.work, images, args, ("--weight-bits", "8")))
            for row in rows:
                print(json.dumps({k: v for k, v in row.items() if k != "versions"}), flush=True)
            report["rows"] += rows
    report["seconds"] = round(time.time() - started, 1)
    report["markdown"] = _markdown(report)
    print(report["markdown"])
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    bad = [p for p in report["probes"] if p["mismatches"]]
    bad += [r for r in report["rows"] if r.get("agrees") is False or "library_failed" in r]
    for item in bad:
        print("MISMATCH:", json.dumps(item.get("mismatches") or item), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
