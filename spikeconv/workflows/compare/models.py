"""Where each compared network comes from: a user checkpoint, the cache, or a training/conversion run.

Every trained or converted network is cached under a name holding the hash of everything that
determines it (architecture, data set and the SHA-256 of its data files, training or conversion
settings, and for conversions the SHA-256 of the very ANN file converted), so a rerun with the same
settings finds it and skips the work, and a change of any setting or input file makes a new file
instead of silently reusing a stale one. A conversion's key needs its ANN's bytes, so while the ANN
is still to be trained the conversion's plan is provisional; :func:`settle_plan` trains the ANN and
plans the conversion then. The existing jobs do the
work (``train_ann_job``, ``convert_job``, ``train_snn_job``), so a cached file is exactly what the
matching ``spikeconv`` command would write.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spikeconv.convert.methods import MethodSettings
from spikeconv.errors import CheckpointError
from spikeconv.workflows.compare.methods import CompareMethod, MethodKind, compare_method
from spikeconv.workflows.hybrid import FinetuneBudget
from spikeconv.workflows.jobs import ConvertJob, DataSource, TrainAnnJob, convert_job, train_ann_job
from spikeconv.workflows.options import (
    ann_training_from_options,
    convert_from_options,
    settings_from_options,
    snn_training_from_options,
)
from spikeconv.workflows.train_snn import TrainSnnJob, train_snn_job

__all__ = ["ModelPlan", "TrainingBudget", "file_sha256", "json_sha256", "make_model", "plan_models", "settle_plan"]

ANN_EPOCHS = 15  # spikeconv train-ann's default
SNN_EPOCHS = 20  # spikeconv train-snn's default
BATCH_SIZE = 128
PENDING = "convert:pending"
"""``model_id`` of a conversion whose ANN is not trained yet (see :func:`settle_plan`)."""


def json_sha256(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON (sorted keys; other objects by ``str``): a cache key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files_sha256(data: DataSource) -> dict[str, str]:
    """What identifies the user's data files the networks learn from: an ``npz:`` file by its SHA-256, an
    ``imagefolder:`` by the SHA-256 of its listing (every file's relative path, size and modification
    time: hashing every image would cost more than training on them). Data sets by name hold fixed data."""
    found = {str(path): file_sha256(path) for path in data.input_files() if Path(path).is_file()}
    if data.name.startswith("imagefolder:"):
        root = Path(data.name.removeprefix("imagefolder:")).expanduser()
        listing = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())
        found[str(root)] = json_sha256(listing)
    return found


@dataclass(frozen=True)
class TrainingBudget:
    """What the compare job trains with; per-method maps use ``"*"`` for every method.

    Attributes:
        arch: Preset or layer notation.
        data: Training data (and the test split the jobs score).
        epochs: Epochs per method (``"ann"`` for the ANN); defaults 15 (ANN) and 20 (SNNs).
        train_timesteps: T of direct training per method; defaults 2 for ``mtlif``, else 4.
        train_limit: Train on the first N training samples only.
        augment: Augmentation name for every training run.
        seed: Seed of every training run and of the calibration subset.
        target_timesteps: The T conversion methods optimise thresholds and corrections for.
        calib_samples: Training samples conversion calibrates on.
        device: Where training, conversion and evaluation run (``auto``, ``cpu``, ``cuda``, ``cuda:N``); not part
            of any cache key, since the networks are the same wherever they are made.
        precision: ``32``, ``bf16`` or ``16`` for training and simulation.
    """

    arch: str
    data: DataSource = field(default_factory=DataSource)
    epochs: dict[str, int] = field(default_factory=dict)
    train_timesteps: dict[str, int] = field(default_factory=dict)
    train_limit: int | None = None
    augment: str = "none"
    seed: int = 0
    target_timesteps: int = 4
    calib_samples: int = 2000
    device: str = "cpu"
    precision: str = "32"

    def epochs_for(self, method: CompareMethod) -> int:
        default = ANN_EPOCHS if method.kind is MethodKind.ANN else SNN_EPOCHS
        return self.epochs.get(method.name, self.epochs.get("*", default))

    def timesteps_for(self, method: CompareMethod) -> int:
        return self.train_timesteps.get(method.name, self.train_timesteps.get("*", 2 if method.neuron == "mtlif" else 4))

    def data_flags(self) -> list[str]:
        flags = ["--dataset", self.data.name]
        if self.data.root is not None:
            flags += ["--data-root", str(self.data.root)]
        return flags + (["--train-limit", str(self.train_limit)] if self.train_limit is not None else [])


@dataclass(frozen=True)
class ModelPlan:
    """Where one method's network file is (or will be), and what identifies it.

    Attributes:
        method: The method.
        path: The file: a user checkpoint, or a cache entry (which may not exist yet).
        model_id: ``file:<sha256>`` for a user checkpoint, ``train:``/``convert:<hash of settings>``
            otherwise; known before any training (a conversion's once its ANN file exists, see
            :func:`settle_plan`), so finished results can be recognised.
        from_checkpoint: The user passed the file with ``--checkpoint``.
        settings: JSON record of the training or conversion settings (empty for checkpoints).
        command: The ``spikeconv`` command that makes the file (empty for checkpoints).
        train_timesteps: T of direct training (None for conversions and the ANN).
    """

    method: CompareMethod
    path: Path
    model_id: str
    from_checkpoint: bool
    settings: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    train_timesteps: int | None = None


def _ann_config(method: CompareMethod, budget: TrainingBudget):
    """spikeconv train-ann's defaults, with the compare job's epochs, augmentation and seed."""
    return ann_training_from_options(epochs=budget.epochs_for(method), batch_size=BATCH_SIZE, lr=2e-3, optimizer="adam",
                                     schedule="one-cycle", weight_decay=0.0, augment=budget.augment, seed=budget.seed)  # fmt: skip


def _ann_plan(budget: TrainingBudget, cache: Path, checkpoints: dict[str, Path]) -> ModelPlan:
    method = compare_method("ann")
    if "ann" in checkpoints:
        return ModelPlan(method, checkpoints["ann"], f"file:{file_sha256(checkpoints['ann'])}", True)
    config = _ann_config(method, budget)
    settings = {"kind": "train-ann", "arch": budget.arch, "dataset": budget.data.name, "train_limit": budget.train_limit,
                "train": config.to_dict(), "dropout": 0.0, "normalize": True, "data_files": data_files_sha256(budget.data)}  # fmt: skip
    key = json_sha256(settings)
    path = cache / f"ann-{key[:16]}.pt"
    command = shlex.join(["spikeconv", "train-ann", "--arch", budget.arch, *budget.data_flags(), "--epochs",
                          str(config.epochs), "--augment", budget.augment, "--seed", str(budget.seed), "--out", str(path)])  # fmt: skip
    return ModelPlan(method, path, f"train:{key}", False, settings, command)


def _conversion_settings(method: CompareMethod, budget: TrainingBudget) -> MethodSettings:
    """``spikeconv convert --method NAME``'s defaults, with the compare job's target T, samples and seed."""
    base = convert_from_options(reset="subtract", v_init=0.5, encoding="direct", seed=budget.seed, timesteps=64)
    return settings_from_options(method.name, base, target_timesteps=budget.target_timesteps,
                                 correction_samples=min(512, budget.calib_samples), threshold=None, percentile=None,
                                 per_channel=False, max_spikes=None)  # fmt: skip


def _conversion_plan(method: CompareMethod, ann: ModelPlan, budget: TrainingBudget, cache: Path,
                     checkpoints: dict[str, Path]) -> ModelPlan:  # fmt: skip
    if method.name in checkpoints:
        path = checkpoints[method.name]
        return ModelPlan(method, path, f"file:{file_sha256(path)}", True)
    if not ann.path.is_file():  # a conversion is keyed by its ANN's bytes: settle_plan trains the ANN, then plans this
        return ModelPlan(method, cache / f"{method.name}-pending.snn.pt", PENDING, False)
    recipe = _conversion_settings(method, budget)
    settings = {"kind": "convert", "method": method.name, "ann": ann.model_id, "ann_sha256": file_sha256(ann.path),
                "data_files": data_files_sha256(budget.data), "dataset": budget.data.name,
                "target_timesteps": budget.target_timesteps, "calib_samples": budget.calib_samples,
                "correction_samples": min(512, budget.calib_samples), "calib_seed": budget.seed,
                "calibration": recipe.calibration.to_dict(), "convert": recipe.convert.to_dict(),
                "correction": None if recipe.correction is None else recipe.correction.to_dict()}  # fmt: skip
    finetune = _finetune_budget(method, budget)
    if finetune is not None:  # hybrid trains: its budget is part of what the cached file is
        settings["finetune"] = finetune.to_dict()
    key = json_sha256(settings)
    path = cache / f"{method.name}-{key[:16]}.snn.pt"
    flags = ["--dataset", budget.data.name] + (["--data-root", str(budget.data.root)] if budget.data.root else [])
    command = shlex.join(["spikeconv", "convert", str(ann.path), *flags, "--method", method.name, "--target-timesteps",
                          str(budget.target_timesteps), "--calib-samples", str(budget.calib_samples), "--calib-seed",
                          str(budget.seed), "--out", str(path)])  # fmt: skip
    return ModelPlan(method, path, f"convert:{key}", False, settings, command)


def _snn_config(method: CompareMethod, budget: TrainingBudget):
    return snn_training_from_options(neuron=method.neuron, mpr=method.mpr, timesteps=budget.timesteps_for(method),
                                     epochs=budget.epochs_for(method), batch_size=BATCH_SIZE, lr=None, optimizer=None,
                                     schedule="cosine", loss=None, tdbn=None, augment=budget.augment, seed=budget.seed)  # fmt: skip


def _direct_plan(method: CompareMethod, budget: TrainingBudget, cache: Path, checkpoints: dict[str, Path]) -> ModelPlan:
    if method.name in checkpoints:
        path = checkpoints[method.name]
        return ModelPlan(method, path, f"file:{file_sha256(path)}", True)
    config = _snn_config(method, budget)
    settings = {"kind": "train-snn", "arch": budget.arch, "dataset": budget.data.name, "train_limit": budget.train_limit,
                "train": config.to_dict(), "normalize": True, "data_files": data_files_sha256(budget.data)}  # fmt: skip
    key = json_sha256(settings)
    path = cache / f"{method.name}-{key[:16]}.pt"
    command = shlex.join(["spikeconv", "train-snn", "--arch", budget.arch, *budget.data_flags(), "--neuron", method.neuron,
                          *(["--mpr"] if method.mpr else []), "--timesteps", str(config.timesteps), "--epochs",
                          str(config.epochs), "--augment", budget.augment, "--seed", str(budget.seed), "--out", str(path),
                          "--resume"])  # fmt: skip
    return ModelPlan(method, path, f"train:{key}", False, settings, command, config.timesteps)


def plan_models(methods: tuple[CompareMethod, ...], budget: TrainingBudget, cache: Path,
                checkpoints: dict[str, Path]) -> dict[str, ModelPlan]:  # fmt: skip
    """A plan per method, plus ``"ann"`` whenever the ANN or a conversion is compared.

    Raises:
        CheckpointError: A ``--checkpoint`` file does not exist.
    """
    for name, path in checkpoints.items():
        if not Path(path).is_file():
            raise CheckpointError(f"--checkpoint {name}={path}: no such file; check the path")
    plans: dict[str, ModelPlan] = {}
    if any(m.kind in (MethodKind.ANN, MethodKind.CONVERSION) for m in methods):
        plans["ann"] = _ann_plan(budget, cache, checkpoints)
    for method in methods:
        if method.kind is MethodKind.CONVERSION:
            plans[method.name] = _conversion_plan(method, plans["ann"], budget, cache, checkpoints)
        elif method.kind is MethodKind.DIRECT:
            plans[method.name] = _direct_plan(method, budget, cache, checkpoints)
    return plans


def settle_plan(name: str, plans: dict[str, ModelPlan], budget: TrainingBudget, *, progress: bool) -> ModelPlan:
    """The final plan of ``name``, stored back in ``plans``.

    A provisional conversion (its ANN was not trained yet when planned) has the ANN made first (trained,
    or found in the cache) and is then planned with that file's SHA-256; every other plan is final already.
    """
    plan = plans[name]
    if plan.model_id != PENDING:
        return plan
    make_model(plans["ann"], plans, budget, progress=progress)
    plans[name] = _conversion_plan(plan.method, plans["ann"], budget, plan.path.parent, {})
    return plans[name]


def make_model(plan: ModelPlan, plans: dict[str, ModelPlan], budget: TrainingBudget, *, progress: bool) -> str:
    """Make sure ``plan.path`` holds the finished network; returns what was done.

    Returns:
        ``"checkpoint"`` (a user file), ``"cached"`` (found in the cache), ``"trained"`` or
        ``"converted"``. Direct training resumes an interrupted cache entry epoch by epoch.
    """
    if plan.from_checkpoint:
        return "checkpoint"
    if plan.model_id == PENDING:
        raise RuntimeError(f"the conversion {plan.method.name} is not planned yet; call settle_plan first")
    method = plan.method
    if method.kind is MethodKind.DIRECT:
        job = TrainSnnJob(arch=budget.arch, out=plan.path, data=budget.data, train=_snn_config(method, budget),
                          train_limit=budget.train_limit, resume=True, command=plan.command, device=budget.device,
                          precision=budget.precision)  # fmt: skip
        return "trained" if train_snn_job(job, progress=progress).epochs_run else "cached"
    if plan.path.is_file():
        return "cached"
    if method.kind is MethodKind.ANN:
        train_ann_job(TrainAnnJob(arch=budget.arch, out=plan.path, data=budget.data, train=_ann_config(method, budget),
                                  train_limit=budget.train_limit, command=plan.command, device=budget.device,
                                  precision=budget.precision), progress=progress)  # fmt: skip
        return "trained"
    make_model(plans["ann"], plans, budget, progress=progress)
    settings = _conversion_settings(method, budget)
    convert_job(ConvertJob(model=plans["ann"].path, out=plan.path, data=budget.data, calib_samples=budget.calib_samples,
                           calib_seed=budget.seed, calibration=settings.calibration, convert=settings.convert,
                           correction=settings.correction, method=method.name, device=budget.device,
                           finetune=_finetune_budget(method, budget), finetune_timesteps=budget.target_timesteps),
                progress=progress)  # fmt: skip
    return "converted"


def _finetune_budget(method: CompareMethod, budget: TrainingBudget) -> FinetuneBudget | None:
    """hybrid's fine-tune budget in a comparison: the default, on at most the compare job's training samples."""
    if not _conversion_settings(method, budget).finetune:
        return None
    default = FinetuneBudget(seed=budget.seed)
    samples = default.samples if budget.train_limit is None else min(default.samples or budget.train_limit, budget.train_limit)
    return replace(default, samples=samples)
