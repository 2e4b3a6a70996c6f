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

from spikeconv._io import file_sha256
from spikeconv.convert.methods import MethodSettings
from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.files import ModelSpec
from spikeconv.options import ann_training_from_options, convert_from_options, settings_from_options, snn_training_from_options
from spikeconv.training import FinetuneBudget, SnnTrainConfig
from spikeconv.workflows.compare.methods import CompareMethod, MethodKind, compare_method
from spikeconv.workflows.jobs import ConvertJob, DataSource, TrainAnnJob, convert_job, train_ann_job
from spikeconv.workflows.train_snn import TrainSnnJob, train_snn_job

__all__ = ["ModelPlan", "TrainingBudget", "ann_spec", "file_sha256", "json_sha256", "make_model", "plan_models", "settle_plan",
           "snn_train_record"]

ANN_EPOCHS = 15  # spikeconv train-ann's default
SNN_EPOCHS = 20  # spikeconv train-snn's default
BATCH_SIZE = 128
PENDING = "convert:pending"
"""``model_id`` of a conversion whose ANN is not trained yet (see :func:`settle_plan`)."""


def json_sha256(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON (sorted keys; other objects by ``str``): a cache key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
        arch: Preset or layer notation (None with ``model``).
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
        model: The user's trained ANN file (any format ``convert`` reads), instead of training ``arch``: it is
            the ANN column, conversions start from it, and direct methods train its own ingested graph.
        model_spec: What ``model`` does not say itself (preprocessing, input shape, pickle consent).
    """

    arch: str | None
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
    model: Path | None = None
    model_spec: ModelSpec = field(default_factory=ModelSpec)

    def __post_init__(self) -> None:
        if (self.model is None) == (self.arch is None):
            raise ConfigError("compare needs either a MODEL file or --arch (a preset to train), not both")
        if self.model is not None:
            object.__setattr__(self, "model", Path(self.model))

    @property
    def network(self) -> str:
        """What is compared, for reports: the preset, or the model file."""
        return self.arch if self.model is None else f"model {self.model.name}"

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
    source: Path | None = None  # direct training of a model file's own graph: that file (None: the preset)


def _ann_config(method: CompareMethod, budget: TrainingBudget):
    """spikeconv train-ann's defaults, with the compare job's epochs, augmentation and seed."""
    return ann_training_from_options(epochs=budget.epochs_for(method), batch_size=BATCH_SIZE, lr=2e-3, optimizer="adam",
                                     schedule="one-cycle", weight_decay=0.0, augment=budget.augment, seed=budget.seed)  # fmt: skip


def _ann_plan(budget: TrainingBudget, cache: Path, checkpoints: dict[str, Path]) -> ModelPlan:
    method = compare_method("ann")
    if budget.model is not None:  # read with the user's model options, which are part of what it computes
        spec_key = json_sha256(_spec_record(budget.model_spec))[:16]
        return ModelPlan(method, budget.model, f"file:{file_sha256(budget.model)}:{spec_key}", True)
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
    if budget.model is not None:  # the user's options change what the file computes
        settings["model_spec"] = _spec_record(budget.model_spec)
    finetune = _finetune_budget(method, budget)
    if finetune is not None:  # hybrid trains: its budget is part of what the cached file is
        settings["finetune"] = finetune.to_dict()
    key = json_sha256(settings)
    path = cache / f"{method.name}-{key[:16]}.snn.pt"
    flags = ["--dataset", budget.data.name] + (["--data-root", str(budget.data.root)] if budget.data.root else [])
    command = shlex.join(["spikeconv", "convert", str(ann.path), *_spec_flags(ann_spec(ann, budget)), *flags, "--method",
                          method.name, "--target-timesteps",
                          str(budget.target_timesteps), "--calib-samples", str(budget.calib_samples), "--calib-seed",
                          str(budget.seed), "--out", str(path)])  # fmt: skip
    return ModelPlan(method, path, f"convert:{key}", False, settings, command)


def _snn_config(method: CompareMethod, budget: TrainingBudget):
    return snn_training_from_options(neuron=method.neuron, mpr=method.mpr, timesteps=budget.timesteps_for(method),
                                     epochs=budget.epochs_for(method), batch_size=BATCH_SIZE, lr=None, optimizer=None,
                                     schedule="cosine", loss=None, tdbn=None, augment=budget.augment, seed=budget.seed)  # fmt: skip


def snn_train_record(config: SnnTrainConfig) -> dict[str, Any]:
    """``config.to_dict()`` without the options added after caches existed (``label_smoothing``) while they are at their
    defaults, so that a cache made before them keeps its key and is not retrained."""
    record = config.to_dict()
    if record.get("label_smoothing") == 0.0:
        del record["label_smoothing"]
    return record


def _direct_source(method: CompareMethod, budget: TrainingBudget, ann: ModelPlan | None) -> Path | None:
    """The model file whose graph a direct method trains: the ANN's (from its weights), the user's MODEL, or None (the preset)."""
    if method.from_ann:
        assert ann is not None
        return ann.path
    return budget.model


def _direct_plan(method: CompareMethod, budget: TrainingBudget, cache: Path, checkpoints: dict[str, Path],
                 ann: ModelPlan | None = None) -> ModelPlan:  # fmt: skip
    if method.name in checkpoints:
        path = checkpoints[method.name]
        return ModelPlan(method, path, f"file:{file_sha256(path)}", True)
    source = _direct_source(method, budget, ann)
    if source is not None and not source.is_file():  # from the ANN's weights: settle_plan trains the ANN, then plans this
        return ModelPlan(method, cache / f"{method.name}-pending.pt", PENDING, False)
    config = _snn_config(method, budget)
    settings = {"kind": "train-snn", "arch": budget.arch, "dataset": budget.data.name, "train_limit": budget.train_limit,
                "train": snn_train_record(config), "normalize": True, "data_files": data_files_sha256(budget.data)}  # fmt: skip
    network = ["--arch", str(budget.arch)]
    if source is not None:
        init = "ann" if method.from_ann else "scratch"
        settings.update({"arch": None, "model_sha256": file_sha256(source), "init": init,
                         "model_spec": _spec_record(budget.model_spec if source == budget.model else ModelSpec())})  # fmt: skip
        network = [str(source), "--init", init, *_spec_flags(budget.model_spec if source == budget.model else ModelSpec())]
    key = json_sha256(settings)
    path = cache / f"{method.name}-{key[:16]}.pt"
    command = shlex.join(["spikeconv", "train-snn", *network, *budget.data_flags(), "--neuron", method.neuron,
                          *(["--mpr"] if method.mpr else []), "--timesteps", str(config.timesteps), "--epochs",
                          str(config.epochs), "--augment", budget.augment, "--seed", str(budget.seed), "--out", str(path),
                          "--resume"])  # fmt: skip
    return ModelPlan(method, path, f"train:{key}", False, settings, command, config.timesteps, source)


def _spec_record(spec: ModelSpec) -> dict[str, Any]:
    """The parts of ``spec`` that change what a model file computes, as JSON (a cache-key ingredient)."""
    return {"preprocessing": None if spec.preprocessing is None else spec.preprocessing.to_dict(),
            "input_shape": None if spec.input_shape is None else list(spec.input_shape), "trust_pickle": spec.trust_pickle}  # fmt: skip


def _spec_flags(spec: ModelSpec) -> list[str]:
    """The command-line flags that give ``spec`` (for the recorded commands)."""
    flags = []
    if spec.preprocessing is not None:
        flags += ["--mean", ",".join(map(str, spec.preprocessing.mean)), "--std", ",".join(map(str, spec.preprocessing.std))]
    if spec.input_shape is not None:
        flags += ["--input-shape", ",".join(map(str, spec.input_shape))]
    return flags + (["--trust-pickle"] if spec.trust_pickle else [])


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
    if any(m.kind in (MethodKind.ANN, MethodKind.CONVERSION) or m.from_ann for m in methods):
        plans["ann"] = _ann_plan(budget, cache, checkpoints)
    for method in methods:
        if method.kind is MethodKind.CONVERSION:
            plans[method.name] = _conversion_plan(method, plans["ann"], budget, cache, checkpoints)
        elif method.kind is MethodKind.DIRECT:
            plans[method.name] = _direct_plan(method, budget, cache, checkpoints, plans.get("ann"))
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
    if plan.method.kind is MethodKind.DIRECT:
        plans[name] = _direct_plan(plan.method, budget, plan.path.parent, {}, plans["ann"])
    else:
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
        spec = budget.model_spec if plan.source is not None and plan.source == budget.model else ModelSpec()
        job = TrainSnnJob(arch=None if plan.source is not None else budget.arch, model=plan.source, model_spec=spec,
                          init="ann" if method.from_ann else "scratch", out=plan.path, data=budget.data,
                          train=_snn_config(method, budget), train_limit=budget.train_limit, resume=True,
                          command=plan.command, device=budget.device, precision=budget.precision)  # fmt: skip
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
    convert_job(ConvertJob(model=plans["ann"].path, model_spec=ann_spec(plans["ann"], budget), out=plan.path,
                           data=budget.data, calib_samples=budget.calib_samples,
                           calib_seed=budget.seed, calibration=settings.calibration, convert=settings.convert,
                           correction=settings.correction, method=method.name, device=budget.device,
                           finetune=_finetune_budget(method, budget), finetune_timesteps=budget.target_timesteps),
                progress=progress)  # fmt: skip
    return "converted"


def ann_spec(plan: ModelPlan, budget: TrainingBudget) -> ModelSpec:
    """How to read the ANN file: the user's MODEL with the compare job's model options, any other with none."""
    return budget.model_spec if budget.model is not None and plan.path == budget.model else ModelSpec()


def _finetune_budget(method: CompareMethod, budget: TrainingBudget) -> FinetuneBudget | None:
    """hybrid's fine-tune budget in a comparison: the default, on at most the compare job's training samples."""
    if not _conversion_settings(method, budget).finetune:
        return None
    default = FinetuneBudget(seed=budget.seed)
    samples = default.samples if budget.train_limit is None else min(default.samples or budget.train_limit, budget.train_limit)
    return replace(default, samples=samples)
