"""``spikeconv curve`` on one SNN file: simulate it once for T steps and record the accuracy after every step.

Apart from the train and convert jobs (:mod:`spikeconv.workflows.jobs`) because the curve of several
files (:mod:`spikeconv.workflows.curves`) and ``compare`` build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from spikeconv._io import output_set
from spikeconv._outputs import check_outputs
from spikeconv.data import Split
from spikeconv.data.checks import check_data_fits
from spikeconv.evaluation import CurveResult, MemoryBudget, count_operations, plot_curves, timestep_accuracy_curve, write_curve_json
from spikeconv.evaluation.op_counts import OperationCounts
from spikeconv.evaluation.step_cost import step_cost
from spikeconv.files import LoadedSnn, load_snn
from spikeconv.neurons import check_timesteps
from spikeconv.runtime import Precision, check_precision, resolve_device
from spikeconv.workflows.jobs import DataSource, write_main


@dataclass(frozen=True)
class CurveJob:
    """Simulate a saved SNN once for T steps and record the accuracy after every step."""

    snn: Path
    timesteps: int
    data: DataSource = field(default_factory=DataSource)
    limit: int | None = None
    batch_size: int = 256
    time_chunk: int | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    rate_code: bool = False  # also the ideal rate code of each converted SNN (workflows/curves.py)
    device: str = "cpu"  # auto, cpu, cuda, cuda:N (runtime/device.py)
    precision: str = Precision.FP32.value  # 32, bf16, 16: autocast of the simulation's conv/linear layers

    def __post_init__(self) -> None:
        check_timesteps(self.timesteps)
        check_precision(self.precision, resolve_device(self.device))


def curve_job(job: CurveJob, *, progress: bool = True) -> CurveResult:
    """Timestep-accuracy curve of an SNN file on a test split, with its ANN (if converted) as the reference."""
    check_outputs({"--json": job.json_path, "--plot": job.plot_path}, [job.snn, *job.data.input_files()])
    loaded = load_snn(job.snn)
    return curve_of_loaded(loaded, job, progress=progress)


def curve_of_loaded(loaded: LoadedSnn, job: CurveJob, *, progress: bool = True, memory: MemoryBudget | None = None) -> CurveResult:
    """The curve of a loaded SNN; ``memory`` adds what the caller keeps per step (see timestep_accuracy_curve)."""
    return counted_curve(loaded, job, progress=progress, memory=memory)[0]


def counted_curve(loaded: LoadedSnn, job: CurveJob, *, progress: bool = True,
                  memory: MemoryBudget | None = None) -> tuple[CurveResult, OperationCounts]:  # fmt: skip
    """The curve and the spike/operation counts of the same simulation (written as ``job`` asks); the curve
    carries the cost per step (``extra["step_cost"]``)."""
    test = job.data.load(Split.TEST, job.limit, input_shape=tuple(loaded.info["input_shape"]))
    check_data_fits(test, input_shape=tuple(loaded.info["input_shape"]),
                    num_classes=int(loaded.info["num_classes"]), what=f"test ({job.data.name})", model=str(job.snn))  # fmt: skip
    device = resolve_device(job.device)
    snn = loaded.snn.to(device)
    ann = loaded.ann.to(device) if loaded.ann is not None else None
    if job.time_chunk is not None:
        snn.time_chunk = check_timesteps(job.time_chunk)
    with count_operations(snn, shard=True) as counter:  # the cost per step is reported beside the accuracy per T
        result = timestep_accuracy_curve(snn, test, timesteps=job.timesteps, ann=ann,
                                         batch_size=job.batch_size, progress=progress,
                                         label=f"SNN ({job.snn.name})", memory=memory, device=device,
                                         precision=job.precision, shard=True)  # fmt: skip
    counts = counter.result()
    result = replace(result, extra={**result.extra, "step_cost": step_cost(snn, counts=counts)})
    write_main(lambda: _write_curve_outputs(result, job))
    return result, counts


def _write_curve_outputs(result: CurveResult, job: CurveJob) -> None:
    with output_set():  # the JSON and the plot appear together or not at all
        if job.json_path is not None:
            write_curve_json(result, job.json_path)
        if job.plot_path is not None:
            plot_curves([result], job.plot_path, title=f"{job.snn.name} on {job.data.name}")
