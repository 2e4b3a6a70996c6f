"""The compare job: the ANN, conversion and direct training side by side, with spikes, operations and energy.

For one architecture and data set, each chosen method's network is taken from a checkpoint, the
cache, or trained/converted by the existing jobs (:mod:`spikeconv.workflows.compare.models`); then
every network is scored on the same test samples. A spiking network is simulated once for the
largest budget T by the code behind ``spikeconv curve`` (so its accuracies agree with that
command on the same file), with :func:`~spikeconv.evaluation.count_operations` attached to count
spikes and operations per step during that same simulation.

Output folder::

    REPORT/report.json  report.md  accuracy.png  spike_rates.png  energy_accuracy.png
    REPORT/results/<method>.json     one per finished model, written atomically
    REPORT/cache/                    trained and converted networks (``cache_dir``)

A rerun with the same settings reuses every finished result (and every cached network), so an
interrupted run continues where it stopped; ``resume=False`` (``--fresh``) recomputes the
results but still reuses cached networks.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from spikeconv._io import atomic_write, output_set
from spikeconv._outputs import check_output_folder, check_outputs
from spikeconv.data import Split
from spikeconv.data.checks import check_data_fits
from spikeconv.errors import ConfigError
from spikeconv.evaluation import (
    EnergyModel,
    MemoryBudget,
    accuracy_figure,
    accuracy_table,
    ann_accuracy,
    ann_result,
    build_report,
    check_curve_memory,
    count_operations,
    counts_bytes_per_step,
    energy_figure,
    report_markdown,
    save_figure,
    snn_result,
    spike_rate_figure,
)
from spikeconv.files import ModelSpec, load_ann, load_snn
from spikeconv.runtime import barrier, is_main_process, resolve_device
from spikeconv.workflows.compare.checks import check_arch, check_snn_kind, expected_shapes
from spikeconv.workflows.compare.methods import (
    DEFAULT_COMPARE_METHODS,
    DEFAULT_COMPARE_TIMESTEPS,
    CompareMethod,
    MethodKind,
    check_method_keys,
    compare_method,
    expand_direct_inits,
    parse_checkpoints,
    parse_methods,
    parse_per_method,
    parse_timesteps,
)
from spikeconv.workflows.compare.models import (
    ModelPlan,
    TrainingBudget,
    ann_spec,
    file_sha256,
    json_sha256,
    make_model,
    plan_models,
    settle_plan,
)
from spikeconv.workflows.curve import CurveJob, counted_curve
from spikeconv.workflows.jobs import DataSource

__all__ = ["CompareJob", "CompareResult", "compare_job", "compare_job_from_options"]

RESULT_VERSION = 2  # 2: static (time-invariant input) layers marked in the counts
PLOTS = {"accuracy vs timesteps": "accuracy.png", "spike rate per layer": "spike_rates.png",
         "accuracy vs energy": "energy_accuracy.png"}  # fmt: skip


@dataclass(frozen=True)
class CompareJob:
    """Compare methods on one architecture and data set, and write a report folder.

    Attributes:
        training: Architecture, data and how to train/convert whatever is not given.
        out_dir: The report folder.
        methods: Method names (see ``COMPARE_METHODS``), in report order.
        timesteps: Budgets T to report; each SNN is simulated once for the largest.
        checkpoints: Method name -> file to use instead of training/converting (``ann``: a
            spikeconv ANN checkpoint or ONNX file; conversions: a ``spikeconv convert`` file;
            direct methods: a ``spikeconv train-snn`` checkpoint).
        cache_dir: Trained/converted networks (default ``out_dir/cache``).
        limit: Score the first N test samples only.
        batch_size: Evaluation batch size.
        time_chunk: Simulate this many steps per pass (bounds memory at large T; same results).
        energy: Energy per operation.
        resume: Reuse finished results whose settings match.
        command: The command line, recorded in the report.
    """

    training: TrainingBudget
    out_dir: Path
    methods: tuple[str, ...] = DEFAULT_COMPARE_METHODS
    timesteps: tuple[int, ...] = DEFAULT_COMPARE_TIMESTEPS
    checkpoints: Mapping[str, Path] = field(default_factory=dict)
    cache_dir: Path | None = None
    limit: int | None = None
    batch_size: int = 256
    time_chunk: int | None = None
    energy: EnergyModel = field(default_factory=EnergyModel)
    resume: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        methods = tuple(compare_method(m).name for m in self.methods)
        if not methods or len(set(methods)) != len(methods):
            raise ConfigError(f"methods must name at least one method, each once; got {list(self.methods)}")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "timesteps", parse_timesteps(self.timesteps))
        object.__setattr__(self, "checkpoints", {compare_method(k).name: Path(v) for k, v in dict(self.checkpoints).items()})
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        for name, value in (("limit", self.limit), ("batch_size", self.batch_size), ("time_chunk", self.time_chunk)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConfigError(f"--out-dir {self.out_dir} is a file; pass a folder for the report")
        if self.training.model is not None and "ann" in self.checkpoints:
            raise ConfigError("MODEL is the ANN of this comparison; drop --checkpoint ann=... or the MODEL argument")
        chosen = [compare_method(m) for m in methods]
        needs_ann = any(m.kind is MethodKind.CONVERSION or m.from_ann for m in chosen)
        with_ann = chosen + ([compare_method("ann")] if needs_ann else [])
        check_method_keys(self.checkpoints, with_ann, option="--checkpoint", kinds=tuple(MethodKind))
        check_method_keys(self.training.epochs, with_ann, option="--epochs", kinds=(MethodKind.ANN, MethodKind.DIRECT))
        check_method_keys(self.training.train_timesteps, chosen, option="--train-timesteps", kinds=(MethodKind.DIRECT,))
        check_curve_memory(max(self.timesteps), budget=MemoryBudget())  # before anything is trained

    @property
    def compared(self) -> tuple[CompareMethod, ...]:
        return tuple(compare_method(m) for m in self.methods)


@dataclass(frozen=True)
class CompareResult:
    """What a compare job wrote: the report (as written to report.json), its files, per method
    what was done (``trained``, ``converted``, ``cached``, ``checkpoint``, ``reused``), and the
    accuracy table in markdown."""

    report: dict[str, Any]
    out_dir: Path
    files: dict[str, Path]
    status: dict[str, str]
    table: str = ""


def _data_sha256(dataset: Any) -> str:
    """SHA-256 of the test tensors: float32 inputs in [0, 1], then int64 labels."""
    digest = hashlib.sha256()
    if hasattr(dataset, "as_tensors"):
        batches = [dataset.as_tensors()]
    else:
        batches = torch.utils.data.DataLoader(dataset, batch_size=1024, shuffle=False)
    for x, y in batches:
        digest.update(x.to(torch.float32).contiguous().numpy().tobytes())
        digest.update(torch.as_tensor(y).to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _provenance(plan: ModelPlan, status: str, job: CompareJob) -> dict[str, Any]:
    curve = ["spikeconv", "curve", str(plan.path), "--dataset", job.training.data.name, "--timesteps", str(max(job.timesteps)),
             "--batch-size", str(job.batch_size)] + (["--limit", str(job.limit)] if job.limit else [])  # fmt: skip
    return {"path": str(plan.path), "sha256": file_sha256(plan.path), "source": status, "model_id": plan.model_id,
            "settings": plan.settings, "command": plan.command,
            "curve_command": " ".join(curve) if plan.method.kind is not MethodKind.ANN else "",
            "train_timesteps": plan.train_timesteps}  # fmt: skip


def _evaluate_ann(plan: ModelPlan, status: str, job: CompareJob, test: Any, expected: list, progress: bool) -> dict[str, Any]:
    loaded = load_ann(plan.path, ann_spec(plan, job.training))
    check_arch(loaded.model, expected, plan, job.training)
    check_data_fits(test, input_shape=loaded.input_shape, num_classes=loaded.num_classes, what=f"test ({job.training.data.name})")
    device = resolve_device(job.training.device)
    with count_operations(loaded.model.to(device), shard=True) as counter:
        accuracy = ann_accuracy(loaded.model, test, batch_size=job.batch_size, progress=progress, device=device, shard=True)
    model = {**_provenance(plan, status, job), "metadata": {k: loaded.metadata.get(k) for k in ("test_accuracy", "dataset")}}
    return ann_result(accuracy=accuracy, num_samples=len(test), counts=counter.result(), model=model)


def _evaluate_snn(plan: ModelPlan, status: str, job: CompareJob, expected: list, progress: bool) -> dict[str, Any]:
    loaded = load_snn(plan.path)
    check_arch(loaded.snn, expected, plan, job.training)
    check_snn_kind(loaded, plan)
    spec = CurveJob(snn=plan.path, timesteps=max(job.timesteps), data=job.training.data, limit=job.limit, batch_size=job.batch_size,
                    time_chunk=job.time_chunk, device=job.training.device, precision=job.training.precision)  # fmt: skip
    memory = MemoryBudget(extra_per_step=counts_bytes_per_step(loaded.snn))  # the counts grow with T like the curve
    curve, counts = counted_curve(loaded, spec, progress=progress, memory=memory)  # one counted simulation
    model = _provenance(plan, status, job)
    training = loaded.info.get("training")
    if training:
        model["train_timesteps"] = training.get("config", {}).get("timesteps", plan.train_timesteps)
        model["training"] = training
    else:
        model["conversion"] = {k: loaded.info.get(k) for k in ("method", "calibration", "ann_metadata")}
    return snn_result(method=plan.method.name, kind=plan.method.kind.value, label=plan.method.label, curve=curve,
                      counts=counts, timesteps=job.timesteps, model=model)  # fmt: skip


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _summary(result: Mapping[str, Any], energy: EnergyModel) -> str:
    points = result["points"]
    last = points[-1]
    joules = energy.energy_pj(ac=last["ac"], mac=last["mac"]) / 1e6
    if result["kind"] == "ann":
        return f"{last['accuracy']:.2f}%, {joules:.3g} µJ"
    accs = ", ".join(f"{p['accuracy']:.2f}%@{p['timesteps']}" for p in points)
    return f"{accs}; {joules:.3g} µJ and spike rate {last['spike_rate']:.3f} at T={last['timesteps']}"


def _one_method(name: str, plans: dict[str, ModelPlan], job: CompareJob, test: Any, evaluation: dict, expected: list,
                progress: bool) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Reuse the finished result of ``name`` or make and evaluate its network; returns (result, status)."""
    plan = settle_plan(name, plans, job.training, progress=progress)  # a conversion's key holds its ANN's SHA-256
    path = job.out_dir / "results" / f"{name}.json"
    fingerprint = json_sha256({"version": RESULT_VERSION, "method": name, "model": plan.model_id, "evaluation": evaluation})
    previous = _read_result(path) if job.resume else None
    if previous is not None and previous.get("fingerprint") == fingerprint:
        return previous, "reused"
    started = time.perf_counter()
    status = make_model(plan, plans, job.training, progress=progress)
    made = time.perf_counter()
    if plan.method.kind is MethodKind.ANN:
        result = _evaluate_ann(plan, status, job, test, expected, progress)
    else:
        result = _evaluate_snn(plan, status, job, expected, progress)
    seconds = {"make": round(made - started, 2), "evaluate": round(time.perf_counter() - made, 2)}
    result = {**result, "fingerprint": fingerprint, "evaluation": evaluation, "seconds": seconds}
    if is_main_process():  # under torchrun every rank holds the same result
        with atomic_write(path) as handle:
            json.dump(result, handle, indent=1, allow_nan=False)
    return result, status


def compare_job(job: CompareJob, *, progress: bool = True, on_model: Callable[[str], None] | None = None) -> CompareResult:
    """Make, evaluate and report every method of ``job``; see the module docstring.

    Args:
        job: What to compare.
        progress: tqdm bars on stderr (training epochs, evaluation batches).
        on_model: Called with a one-line status after each method finishes (or is reused).

    Raises:
        ConfigError: Bad options (unknown architecture, ...).
        DataError: Missing data, or data that does not fit a model.
        CheckpointError: A checkpoint that is missing, foreign, of another method or of another
            architecture.
        OutputError: The report or cache folder, or a report file, cannot be written or is a
            ``--checkpoint`` file (checked before any data is read or model trained).
    """
    started = time.perf_counter()
    cache = job.cache_dir if job.cache_dir is not None else job.out_dir / "cache"
    _check_report_paths(job, cache)
    test = job.training.data.load(Split.TEST, job.limit)
    expected = expected_shapes(job.training, test)
    plans = plan_models(job.compared, job.training, cache, dict(job.checkpoints))
    evaluation = {"dataset": job.training.data.name, "limit": job.limit, "samples": len(test), "data_sha256": _data_sha256(test),
                  "timesteps": list(job.timesteps), "batch_size": job.batch_size}  # fmt: skip
    results, status = [], {}
    for index, name in enumerate(job.methods, start=1):
        result, status[name] = _one_method(name, plans, job, test, evaluation, expected, progress)
        results.append(result)
        if on_model is not None:
            on_model(f"[{index}/{len(job.methods)}] {result['label']}: {_summary(result, job.energy)} ({status[name]})")
    meta = _meta(job, evaluation, plans, cache, time.perf_counter() - started)
    meta["model_seconds"] = {r["method"]: r.get("seconds") for r in results}  # reused results keep their first run's times
    meta["total_model_seconds"] = round(sum(sum((r.get("seconds") or {}).values()) for r in results), 1)
    report = build_report(results, energy=job.energy, meta=meta)
    files = _write_report(report, job.out_dir) if is_main_process() else _report_files(job.out_dir)
    barrier()
    return CompareResult(report=report, out_dir=job.out_dir, files=files, status=status, table=accuracy_table(report))


def _check_report_paths(job: CompareJob, cache: Path) -> None:
    """The report folder, the cache folder and every report file, against the ``--checkpoint`` files."""
    check_output_folder("--out-dir", job.out_dir)
    check_output_folder("--cache-dir" if job.cache_dir is not None else "--out-dir (its cache folder)", cache)
    files = {f"--out-dir file {name}": job.out_dir / name for name in ("report.json", "report.md", *PLOTS.values())}
    files.update({f"--out-dir file results/{m}.json": job.out_dir / "results" / f"{m}.json" for m in job.methods})
    model = [job.training.model] if job.training.model is not None else []
    check_outputs(files, [*job.checkpoints.values(), *model, *job.training.data.input_files()])


def _meta(job: CompareJob, evaluation: dict, plans: dict[str, ModelPlan], cache: Path, seconds: float) -> dict[str, Any]:
    return {
        "arch": job.training.network, "model": None if job.training.model is None else str(job.training.model),
        "dataset": job.training.data.name, "methods": list(job.methods),
        "timesteps": list(job.timesteps), "samples": evaluation["samples"], "limit": job.limit,
        "data_sha256": evaluation["data_sha256"], "seed": job.training.seed,
        "versions": {"spikeconv": version("spikeconv"), "torch": str(torch.__version__), "python": platform.python_version()},
        "machine": platform.platform(), "torch_threads": torch.get_num_threads(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "wall_seconds": round(seconds, 1),
        "command": job.command, "cache_dir": str(cache),
        "model_commands": {name: plan.command for name, plan in plans.items() if plan.command},
        "training": {"epochs": dict(job.training.epochs), "train_timesteps": dict(job.training.train_timesteps),
                     "train_limit": job.training.train_limit, "augment": job.training.augment,
                     "target_timesteps": job.training.target_timesteps, "calib_samples": job.training.calib_samples},
    }  # fmt: skip


def _report_files(out_dir: Path) -> dict[str, Path]:
    """The report's paths, as rank 0 writes them (what the other ranks return)."""
    return {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}


def _write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    files = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    figures = {"accuracy vs timesteps": accuracy_figure(report), "accuracy vs energy": energy_figure(report)}
    if any(m["kind"] != "ann" for m in report["models"]):
        figures["spike rate per layer"] = spike_rate_figure(report)
    plots = {caption: PLOTS[caption] for caption in PLOTS if caption in figures}
    with output_set():  # the figures, report.json and report.md appear together or not at all
        for caption, figure in figures.items():
            files[caption] = out_dir / PLOTS[caption]
            save_figure(figure, files[caption])
        with atomic_write(files["json"]) as handle:
            json.dump(report, handle, indent=1, allow_nan=False)
        with atomic_write(files["markdown"]) as handle:
            handle.write(report_markdown(report, plots=plots))
    return files


def compare_job_from_options(*, arch: str | None, data: DataSource, out_dir: Path, methods: str, timesteps: str,
                             checkpoints: tuple[str, ...] = (), epochs: tuple[str, ...] = (),
                             train_timesteps: tuple[str, ...] = (), cache_dir: Path | None = None, limit: int | None = None,
                             train_limit: int | None = None, batch_size: int = 256, augment: str = "none", seed: int = 0,
                             target_timesteps: int = 4, calib_samples: int = 2000, e_ac: float = 0.9, e_mac: float = 4.6,
                             resume: bool = True, command: str = "", time_chunk: int | None = None, device: str = "cpu",
                             precision: str = "32", model: Path | None = None, model_spec: ModelSpec | None = None,
                             direct_init: str | None = None) -> CompareJob:  # fmt: skip
    """A :class:`CompareJob` from the CLI's strings (``"ann,calibrated"``, ``"1,2,4"``, ``["mtlif=2"]``, ...).

    ``direct_init`` (``scratch``, ``ann``, ``both``; default ``both`` with a MODEL, else ``scratch``) says where each
    directly trained method starts: ``both`` lists ``srif-mpr`` and ``srif-mpr-from-ann``.

    Raises:
        ConfigError: An unknown method, an empty or non-positive T list, a malformed
            ``METHOD=VALUE``, or an option given for a method that is not compared.
    """
    budget = TrainingBudget(arch=arch, data=data, epochs=parse_per_method(epochs, option="--epochs"),
                            train_timesteps=parse_per_method(train_timesteps, option="--train-timesteps"),
                            train_limit=train_limit, augment=augment, seed=seed, target_timesteps=target_timesteps,
                            calib_samples=calib_samples, device=device, precision=precision, model=model,
                            model_spec=model_spec or ModelSpec())  # fmt: skip
    chosen = expand_direct_inits(parse_methods(methods), direct_init or ("both" if model is not None else "scratch"))
    return CompareJob(training=budget, out_dir=out_dir, methods=chosen, timesteps=parse_timesteps(timesteps),
                      checkpoints=parse_checkpoints(checkpoints), cache_dir=cache_dir, limit=limit, batch_size=batch_size,
                      time_chunk=time_chunk, energy=EnergyModel(e_ac_pj=e_ac, e_mac_pj=e_mac), resume=resume,
                      command=command)  # fmt: skip
