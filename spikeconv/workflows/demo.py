"""The main job: convert the shipped Fashion-MNIST CNN with ``--method auto``, beside the ``rate`` baseline, and measure both."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from spikeconv._outputs import check_output_folder, check_outputs
from spikeconv.errors import CheckpointError
from spikeconv.evaluation import CurveResult
from spikeconv.search import AutoConfig
from spikeconv.workflows.curve import CurveJob
from spikeconv.workflows.curves import curves_job
from spikeconv.workflows.jobs import ConvertJob, DataSource, convert_job

PRETRAINED_PACKAGE = "spikeconv.models"
PRETRAINED_NAME = "pretrained/fmnist-cnn.pt"


def pretrained_path() -> Path:
    """Path of the Fashion-MNIST ``fmnist-cnn`` checkpoint shipped inside the package."""
    path = Path(str(resources.files(PRETRAINED_PACKAGE).joinpath(PRETRAINED_NAME)))
    if not path.is_file():
        raise CheckpointError(f"the shipped model {path} is missing; reinstall spikeconv")
    return path


@dataclass(frozen=True)
class DemoJob:
    """Convert the shipped ANN with ``auto`` and with ``rate``, simulate both to ``timesteps``, overlay their curves."""

    out_dir: Path = Path("demo-output")
    timesteps: int = 32
    limit: int | None = None
    calib_samples: int = 2000
    data: DataSource = field(default_factory=DataSource)


@dataclass(frozen=True)
class DemoResult:
    """Both curves (auto first), the files written, and the one-line summary."""

    curves: list[CurveResult]
    snn_path: Path
    rate_path: Path
    json_path: Path
    plot_path: Path
    summary: str

    @property
    def curve(self) -> CurveResult:
        """The curve of the ``auto`` conversion."""
        return self.curves[0]


def _steps_within(curve: CurveResult, points: float) -> int | None:
    """The first T at which ``curve`` is within ``points`` of its ANN (None if never up to its length)."""
    return next((t for t in range(1, len(curve.accuracy) + 1) if curve.ann_accuracy - curve.accuracy_at(t) <= points), None)


def summary_line(auto: dict, curves: list[CurveResult]) -> str:
    """"auto: <method> at T = N: X % on the test set, within D points of the ANN; rate: ..." (README quotes it)."""
    chosen, (converted, rate) = auto["chosen"], curves
    steps = int(chosen["timesteps"])
    drop = converted.ann_accuracy - converted.accuracy_at(steps) if steps <= len(converted.accuracy) else float("nan")
    within = max(drop, 1.0)  # auto's own drop, or the default budget when auto did better than it
    rate_steps = _steps_within(rate, within)
    rate_text = (f"rate needs T = {rate_steps} to come within {within:.2f}" if rate_steps else
                 f"rate is not there by T = {len(rate.accuracy)} ({rate.accuracy_at(len(rate.accuracy)):.2f} %)")  # fmt: skip
    return (f"auto chose {chosen['variant']} at T = {steps}: {converted.accuracy_at(steps):.2f} % on the test set, within "
            f"{drop:.2f} points of the ANN ({converted.ann_accuracy:.2f} %); {rate_text}")  # fmt: skip


def demo_job(job: DemoJob, *, progress: bool = True) -> DemoResult:
    """Run the demo; every output lands in ``job.out_dir`` (checked before any work).

    The two conversions (``auto``, the default, and the ``rate`` baseline) write their SNN files
    (the auto one with thresholds.json); then one simulation per file on the same test samples
    writes curve.json (both curves) and curve.png (overlaid) together.
    """
    snn_path, rate_path = job.out_dir / "fmnist-cnn.snn.pt", job.out_dir / "fmnist-cnn-rate.snn.pt"
    curve = CurveJob(snn=snn_path, timesteps=job.timesteps, data=job.data, limit=job.limit,
                     json_path=job.out_dir / "curve.json", plot_path=job.out_dir / "curve.png")  # fmt: skip
    check_output_folder("--out-dir", job.out_dir)
    check_outputs({f"--out-dir file {p.name}": p for p in (snn_path, rate_path, job.out_dir / "thresholds.json", curve.json_path,
                                                            curve.plot_path)}, [pretrained_path()])  # fmt: skip
    common = dict(model=pretrained_path(), data=job.data, calib_samples=job.calib_samples, command="spikeconv demo")
    converted = convert_job(ConvertJob(**common, out=snn_path, method="auto", auto=AutoConfig(),
                                       plan_json=job.out_dir / "thresholds.json"), progress=progress)  # fmt: skip
    convert_job(ConvertJob(**common, out=rate_path, method="rate"), progress=progress)
    curves = curves_job([snn_path, rate_path], curve, progress=progress)
    return DemoResult(curves=curves, snn_path=snn_path, rate_path=rate_path, json_path=curve.json_path,
                      plot_path=curve.plot_path, summary=summary_line(converted.auto, curves))  # fmt: skip
