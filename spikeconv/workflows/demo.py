"""The main job: convert the shipped Fashion-MNIST CNN and measure its timestep-accuracy curve."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from spikeconv._outputs import check_output_folder, check_outputs
from spikeconv.errors import CheckpointError
from spikeconv.evaluation import CurveResult
from spikeconv.workflows.jobs import ConvertJob, CurveJob, DataSource, convert_job, curve_job

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
    """Convert the shipped ANN, simulate to ``timesteps`` and save the curve (JSON + PNG)."""

    out_dir: Path = Path("demo-output")
    timesteps: int = 64
    limit: int | None = None
    calib_samples: int = 2000
    data: DataSource = field(default_factory=DataSource)


@dataclass(frozen=True)
class DemoResult:
    curve: CurveResult
    snn_path: Path
    json_path: Path
    plot_path: Path


def demo_job(job: DemoJob, *, progress: bool = True) -> DemoResult:
    """Run the demo; every output lands in ``job.out_dir`` (checked before any work).

    The SNN file and thresholds.json are written together by the conversion, then curve.json
    and curve.png together by the curve, which reads that SNN file.
    """
    snn_path = job.out_dir / "fmnist-cnn.snn.pt"
    curve = CurveJob(snn=snn_path, timesteps=job.timesteps, data=job.data, limit=job.limit,
                     json_path=job.out_dir / "curve.json", plot_path=job.out_dir / "curve.png")  # fmt: skip
    check_output_folder("--out-dir", job.out_dir)
    check_outputs({f"--out-dir file {p.name}": p for p in (snn_path, job.out_dir / "thresholds.json", curve.json_path,
                                                            curve.plot_path)}, [pretrained_path()])  # fmt: skip
    convert_job(ConvertJob(model=pretrained_path(), out=snn_path, data=job.data,
                           calib_samples=job.calib_samples,
                           plan_json=job.out_dir / "thresholds.json"), progress=progress)  # fmt: skip
    result = curve_job(curve, progress=progress)
    return DemoResult(curve=result, snn_path=snn_path, json_path=curve.json_path,
                      plot_path=curve.plot_path)  # fmt: skip
