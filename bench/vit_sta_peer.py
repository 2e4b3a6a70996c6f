"""SpikingJelly 2.0's transformer conversion (``STATransformerRecipe``) on the same torchvision ViT, for the comparison.

SpikingJelly 2.0.0 (the released wheel) ships ``ann2snn.STATransformerRecipe`` (spatio-temporal
approximation, training-free) and ``ann2snn.recipes.spikezip_qann`` (SpikeZIP-TF, which needs a
quantised ANN built from its own quantiser modules; a GELU ViT trained in float is not one, so it is
not run here). The STA recipe is run as the package's own ViT example runs it
(``ann2snn/examples/imagenet_vit_sta.py``): ``mode="spiking_encoder"`` (calibrated spike encoders
after LayerNorm, GELU and attention; the affine layers exact on running sums), ``threshold_mode="mse"``,
the input at the first step and zeros after it, the readout summed over the steps, multi-step mode.
``time_steps`` is part of the conversion (its threshold search), so every T is converted anew; the
recipe's float ``mode="equivalent"`` is run once as the reference.

The peer is never a spikeconv dependency: like ``bench/peer_speed.py`` the script re-runs itself in
a separate venv (``--peer-venv``) that sees this interpreter's packages (torch 2.14.1, spikeconv) and
has ``spikingjelly==2.0.0`` installed without dependencies.

Usage:
    python bench/vit_sta_peer.py --state bench/results/vit/vit-p7.state.pt --record bench/results/vit/vit-p7.json \\
        --timesteps 1,2,4,8,16,32 --json bench/results/vit/sta.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import ensure_peer_venv  # noqa: E402  (the shared peer venv builder)
from vit_train import MEAN, STD, build  # noqa: E402

from spikeconv.data import Split, load_dataset  # noqa: E402


def _model(state: Path, record: Path) -> torch.nn.Module:
    shape = json.loads(record.read_text())["builder"]
    model = build(**shape)
    model.load_state_dict(torch.load(state, weights_only=True))
    return model.eval()


def _calibration(samples: int, seed: int) -> list[torch.Tensor]:
    train = load_dataset("fashion-mnist", split=Split.TRAIN)
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:samples]
    x = torch.stack([train[int(i)][0] for i in index])
    return [((chunk - MEAN) / STD,) for chunk in x.split(100)]


def _accuracy_curve(converted: torch.nn.Module, test, timesteps: int, batch: int) -> tuple[list[float], dict]:
    """Accuracy after each step, and the spikes the recipe's encoders sent (a count k of one step is k spikes)."""
    from spikingjelly.activation_based import functional

    functional.set_step_mode(converted, "m")
    encoders = [m for m in converted.modules() if type(m).__name__ == "_STASpikeEncoder"]
    spikes, neurons = torch.zeros(timesteps, dtype=torch.float64), 0
    largest = 0.0

    def count(module, args, output):
        nonlocal neurons, largest
        steps = output / module.v_threshold.clamp_min(torch.finfo(output.dtype).eps).reshape(
            [-1 if d == (module.channel_dim % output.dim()) else 1 for d in range(output.dim())])
        k = steps.round().abs()
        spikes.add_(k.flatten(1).sum(1, dtype=torch.float64))
        largest = max(largest, float(k.max()))
        if len(test_seen) == 1:
            neurons += output[0, 0].numel()

    test_seen: list[int] = []
    handles = [m.register_forward_hook(count) for m in encoders]
    hits = torch.zeros(timesteps)
    total = 0
    try:
        with torch.no_grad():
            for x, y in torch.utils.data.DataLoader(test, batch_size=batch):
                test_seen.append(len(y))
                functional.reset_net(converted)
                sequence = torch.zeros(timesteps, *x.shape)
                sequence[0] = (x - MEAN) / STD  # the example's coding: the image at the first step, zeros after it
                readout = converted(sequence).cumsum(0)
                hits += (readout.argmax(-1) == y).sum(-1).float()
                total += len(y)
    finally:
        for handle in handles:
            handle.remove()
    spiking = {"encoders": len(encoders), "neurons_per_image": neurons, "spikes_per_image_per_step": (spikes / total).tolist(),
               "most_spikes_in_one_step": largest}  # fmt: skip
    return (100.0 * hits / total).tolist(), spiking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True, help="vit_train.py's JSON record (the builder's arguments)")
    parser.add_argument("--timesteps", default="1,2,4,8,16,32")
    parser.add_argument("--threshold-scales", default="0.5,1.0")
    parser.add_argument("--calib-samples", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/spikeconv-peer-venv"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    ensure_peer_venv(args.peer_venv)
    import spikingjelly
    from spikingjelly.activation_based.ann2snn import Converter, STATransformerRecipe

    torch.manual_seed(0)
    model = _model(args.state, args.record)
    test = load_dataset("fashion-mnist", split=Split.TEST)
    if args.limit:
        test = torch.utils.data.Subset(test, range(args.limit))
    calibration = _calibration(args.calib_samples, seed=0)
    rows = []
    equivalent = Converter(recipe=STATransformerRecipe(dataloader=None, time_steps=4, mode="equivalent"), device="cpu").convert(model)
    rows.append({"mode": "equivalent", "timesteps": 4, "curve": _accuracy_curve(equivalent, test, 4, args.batch)[0]})
    print(json.dumps(rows[-1]), flush=True)
    for scale in (float(s) for s in args.threshold_scales.split(",")):
        for steps in (int(t) for t in args.timesteps.split(",")):
            started = time.perf_counter()
            recipe = STATransformerRecipe(dataloader=calibration, time_steps=steps, mode="spiking_encoder", threshold_mode="mse",
                                          threshold_scale=scale)  # fmt: skip
            converted = Converter(recipe=recipe, device="cpu").convert(model)
            made = time.perf_counter() - started
            curve, spiking = _accuracy_curve(converted, test, steps, args.batch)
            rows.append({"mode": "spiking_encoder", "threshold_scale": scale, "timesteps": steps, "accuracy": curve[-1], "curve": curve,
                         **spiking, "convert_seconds": round(made, 1), "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    record = {"peer": f"spikingjelly {spikingjelly.__version__ if hasattr(spikingjelly, '__version__') else '2.0.0'}",
              "recipe": "STATransformerRecipe", "calib_samples": args.calib_samples, "test_images": len(test), "rows": rows,
              "machine": platform.platform(), "threads": torch.get_num_threads(), "date": str(date.today())}  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
