"""The state of one ``--method auto`` search: shared calibration statistics, the validation split, and the
table of candidates, each screened by its ideal rate code or simulated (with operation counts), or fine-tuned."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import fx

from spikeconv.calibration import calibrate, plan_of, prepare, recalibrate, sharing_layers
from spikeconv.convert import ConvertConfig, convert, correct
from spikeconv.convert.methods import MethodSettings
from spikeconv.convert.rate_code_ann import rate_code_ann
from spikeconv.data import make_loader
from spikeconv.evaluation import count_operations
from spikeconv.evaluation.memory import measure_simulation, time_chunk_set
from spikeconv.neurons import SpikingNetwork, workspace
from spikeconv.runtime import BatchesOn
from spikeconv.runtime.memory import (
    WORKING_SET,
    MemoryBudget,
    measure_batch_cost,
    plan_batch,
    rebatch,
    release_free_memory,
    resolve_budget,
)
from spikeconv.search.config import AutoConfig
from spikeconv.search.expected_drop import ExpectedDrop
from spikeconv.search.splits import search_and_confirmation
from spikeconv.search.variants import AutoChoice, Variant, bits_per_step
from spikeconv.training.snn.finetune import finetune_converted


class Candidates:
    """The state of one search: shared statistics, data, and the table of candidates."""

    def __init__(self, graph: fx.GraphModule, calibration, validation, base: ConvertConfig, config: AutoConfig,
                 extra: dict[str, Any]) -> None:  # fmt: skip
        self.graph, self.base, self.config, self.extra = graph, base, config, extra
        self.device = next(iter(graph.parameters()), torch.empty(0)).device  # convert --device put the graph there
        self.calibration_loader = BatchesOn(make_loader(calibration, batch_size=256, shuffle=False), self.device)
        self.validation = validation
        self.correction_samples = config.correction_samples
        self.statistics: dict[tuple, fx.GraphModule] = {}
        self.plans: dict[tuple, fx.GraphModule] = {}
        self.rows: list[dict[str, Any]] = []
        self.rate_codes: dict[tuple, torch.Tensor] = {}  # the class a rate code gave each search sample
        searched, stages = search_and_confirmation(validation, config.search_samples)
        # read again for every candidate (one batch in memory at a time); only the labels are kept
        self.batches = BatchesOn(make_loader(searched, batch_size=256, shuffle=False), self.device)
        self.stages = [BatchesOn(make_loader(stage, batch_size=256, shuffle=False), self.device) for stage in stages]
        self.searched, self.held_out = len(searched), len(validation)
        self.stage_ends = [self.searched + sum(len(stage) for stage in stages[: k + 1]) for k in range(len(stages))]
        self.labels = torch.cat([y.cpu() for _, y in self.batches])  # grows by a stage when a confirmation first reads it
        self.example = next(iter(self.batches))[0][:1]
        self.ann_batch = self._ann_batch(graph)  # measured once: the confirmation stages read the ANN in batches of it too
        ann_outputs = self._outputs(graph, self.ann_batch, self.batches)
        self.expected = ExpectedDrop(ann_outputs, self.labels)  # one temperature, fitted on the search samples
        self.ann_correct = self._predictions_of(ann_outputs) == self.labels
        self.ann_accuracy = 100.0 * float(self.ann_correct.float().mean())
        self.stages_read = 0
        self.predictions: dict[int, torch.Tensor] = {}  # id(row) -> the classes its network gave the search samples
        self.networks: dict[int, SpikingNetwork] = {}  # id(row) -> its network, for the rows of the latest T only
        self.networks_at: int | None = None

    def validation_record(self) -> dict[str, Any]:
        """The held-out samples as the report records them: how many, how many the search used, the ANN's accuracy."""
        return {"samples": self.held_out, "search_samples": self.searched, "ann_accuracy": round(self.ann_accuracy, 2),
                "confirmation_stages": self.stage_ends, "inverse_temperature": round(self.expected.inverse_temperature, 4)}

    def _read_stage(self, stage: int) -> None:
        """The ANN's outputs and the labels of confirmation stage ``stage``, read the first time a confirmation needs
        them (an ANN pass over samples no search may ever need is not paid up front)."""
        while self.stages_read <= stage:
            batches = self.stages[self.stages_read]
            outputs = self._outputs(self.graph, self.ann_batch, batches)
            labels = torch.cat([y.cpu() for _, y in batches])
            self.expected.extend(outputs)
            self.labels = torch.cat([self.labels, labels])
            self.ann_correct = torch.cat([self.ann_correct, self._predictions_of(outputs) == labels])
            self.stages_read += 1

    def _ann_batch(self, model: torch.nn.Module) -> int:
        """The validation batch an ANN-like ``model`` (the ANN, a rate code) may take within the working set."""
        with torch.inference_mode():
            cost = measure_batch_cost(model.eval(), self.example)
        room, source = resolve_budget(MemoryBudget(), self.device)
        return plan_batch(cost, wanted=256, room=min(room, WORKING_SET), source=source, what="scoring the validation split")

    @staticmethod
    def _outputs(model: torch.nn.Module, batch: int, batches) -> torch.Tensor:
        """The ANN's outputs on ``batches``, ``[n, classes]`` on the CPU (what the expected drop is read from)."""
        with torch.inference_mode():
            return torch.cat([model(x).float().cpu() for x in rebatch((x for x, _ in batches), batch)])

    @staticmethod
    def _predictions_of(outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)  # ties go to the lowest class

    def _predicted(self, predict: Callable[[torch.Tensor], torch.Tensor], batch: int, batches=None) -> torch.Tensor:
        """The class ``predict`` (logits or summed readout) gives each search sample (or each of ``batches``), ``batch``
        samples at a time."""
        with torch.inference_mode():
            found = [self._predictions_of(predict(x)).cpu() for x in rebatch((x for x, _ in batches or self.batches), batch)]
        return torch.cat(found)

    def _scored(self, predicted: torch.Tensor) -> dict[str, float]:
        """Accuracy, drop below the ANN with the standard error of that paired drop (McNemar's discordant pairs), and the
        drop the ANN's calibrated confidence expects (:mod:`spikeconv.search.expected_drop`) with its standard error,
        on the first ``len(predicted)`` held-out samples (the search samples, or all of them once confirmed)."""
        n = predicted.numel()
        labels, ann_correct = self.labels[:n], self.ann_correct[:n]
        right = predicted == labels
        lost = float((ann_correct & ~right).sum())
        gained = float((~ann_correct & right).sum())
        se = math.sqrt(max(lost + gained - (lost - gained) ** 2 / n, 0.0)) / n * 100.0
        accuracy = 100.0 * float(right.float().mean())
        ann_accuracy = 100.0 * float(ann_correct.float().mean())
        return {"accuracy": round(accuracy, 2), "drop": round(ann_accuracy - accuracy, 2), "drop_se": round(se, 2),
                **self.expected.score(predicted), "samples": n}

    def calibrated(self, settings: MethodSettings) -> fx.GraphModule:
        """The plan of ``settings``' rules, from statistics gathered once per observer family.

        Each plan shares the ANN's layers with its family's statistics and keeps no statistics itself
        (:func:`~spikeconv.calibration.sharing_layers`), so a plan per target T costs only the plan."""
        rule = settings.calibration.default.to_dict()
        family = (rule["kind"], rule.get("per_channel", False), rule.get("q"))
        if family not in self.statistics:
            self.statistics[family] = calibrate(prepare(self.graph, settings.calibration), self.calibration_loader,
                                                extra=self.extra, memory=MemoryBudget(limit=self._room()))  # fmt: skip
        key = (family, rule.get("timesteps"))
        if key not in self.plans:  # per-channel MMSE searches cost seconds; signed and plain variants share them
            planned = recalibrate(self.statistics[family], settings.calibration)
            self.plans[key] = sharing_layers(self.statistics[family], plan_of(planned), rules=planned.meta["spikeconv_rules"])
        return self.plans[key]

    def _room(self) -> int:
        """What a stage of the search may use: the budget, at most the working set."""
        return min(resolve_budget(MemoryBudget(), self.device)[0], WORKING_SET)

    def screen(self, variant: Variant, timesteps: int) -> dict[str, Any]:
        settings = variant.settings(self.base, timesteps, self.correction_samples)
        calibrated, neuron = self.calibrated(settings), settings.convert
        # the rate code reads the plan and these neuron settings only: variants that differ elsewhere (a signed
        # neuron's sign correction) share one pass
        key = (id(calibrated), timesteps, neuron.v_init, neuron.start_shift, neuron.max_spikes, neuron.maxpool)
        if key not in self.rate_codes:
            code = rate_code_ann(calibrated, timesteps, neuron).to(self.device).eval()
            self.rate_codes[key] = self._predicted(code, self._ann_batch(code))  # 8 bytes per sample; plans live in self.plans
        row = {"method": variant.method, "variant": variant.label, "timesteps": timesteps,
               "bits_per_step": bits_per_step(settings.convert), **self._scored(self.rate_codes[key]),
               "energy_uj": None, "how": "screened"}  # fmt: skip
        self.rows.append(row)
        release_free_memory()  # a candidate's tensors are gone: their pages too, before the next is planned
        return row

    def _converted(self, variant: Variant, timesteps: int) -> tuple[fx.GraphModule, ConvertConfig, SpikingNetwork]:
        settings = variant.settings(self.base, timesteps, self.correction_samples)
        calibrated = self.calibrated(settings)
        if settings.correction is not None:
            corrected = correct(calibrated, self.calibration_loader, settings.correction, settings.convert,
                                memory=MemoryBudget(limit=self._room()))  # fmt: skip
            calibrated = sharing_layers(calibrated, plan_of(corrected))  # the candidate keeps its plan, not a copy of the layers
        convert_config = replace(settings.convert, timesteps=timesteps)
        return calibrated, convert_config, convert(calibrated, convert_config).to(self.device).eval()

    def _measured(self, snn: SpikingNetwork, variant: Variant, timesteps: int, convert_config: ConvertConfig,
                  how: str) -> dict[str, Any]:  # fmt: skip
        plan = measure_simulation(snn, self.example, timesteps, wanted=256, memory=MemoryBudget(limit=self._room()))
        with count_operations(snn) as counter, time_chunk_set(snn, plan.chunk):
            predicted = self._predicted(lambda x: snn(x, timesteps).sum(dim=0), plan.batch)
        totals = counter.result().totals(timesteps)
        row = {"method": variant.method, "variant": variant.label, "timesteps": timesteps,
               "bits_per_step": bits_per_step(convert_config), **self._scored(predicted), "how": how,
               "energy_uj": round(self.config.energy.energy_pj(ac=totals["ac"], mac=totals["mac"]) / 1e6, 4),
               "spike_rate": round(float(totals["spike_rate"]), 4)}  # fmt: skip
        self.rows.append(row)
        if timesteps != self.networks_at:  # a confirmation follows the simulations of its own T: older networks are done
            self.networks, self.networks_at = {}, timesteps
        for module in snn.modules():  # kept for a confirmation: its weights, not the output buffers it reuses
            workspace.release(module)
        self.predictions[id(row)], self.networks[id(row)] = predicted, snn
        release_free_memory()
        return row

    def confirm(self, row: dict[str, Any], choice: AutoChoice,
                settled: Callable[[dict[str, Any]], bool]) -> tuple[dict[str, Any], AutoChoice]:  # fmt: skip
        """``row`` (within budget on the search samples) scored on more held-out samples: its network simulated on each
        confirmation stage in turn, pooled with its search predictions, until ``settled`` says the pooled row decides
        (or every stage is read). The same row when there are no other samples."""
        if not self.stages:
            return row, choice
        timesteps = int(row["timesteps"])
        snn = self.networks.get(id(row), choice.snn)
        if snn is None:  # simulated at an earlier T (the energy objective looks back): build it again
            snn = self._converted(choice.variant, timesteps)[2]
        plan = measure_simulation(snn, self.example, timesteps, wanted=256, memory=MemoryBudget(limit=self._room()))
        predicted = self.predictions[id(row)]
        for stage, batches in enumerate(self.stages):
            self._read_stage(stage)
            with time_chunk_set(snn, plan.chunk):
                more = self._predicted(lambda x: snn(x, timesteps).sum(dim=0), plan.batch, batches)
            predicted = torch.cat([predicted, more])
            confirmed = {**row, **self._scored(predicted), "how": "confirmed"}
            if settled(confirmed):
                break
        self.rows.append(confirmed)
        release_free_memory()
        return confirmed, choice

    def simulate(self, variant: Variant, timesteps: int) -> tuple[dict[str, Any], AutoChoice]:
        calibrated, convert_config, snn = self._converted(variant, timesteps)
        row = self._measured(snn, variant, timesteps, convert_config, "simulated")
        if convert_config.weight_bits is not None:  # --weight-bits: the same candidate with float weights, for comparison
            floats = convert(calibrated, replace(convert_config, weight_bits=None)).to(self.device).eval()
            plan = measure_simulation(floats, self.example, timesteps, wanted=256, memory=MemoryBudget(limit=self._room()))
            with time_chunk_set(floats, plan.chunk):
                predicted = self._predicted(lambda x: floats(x, timesteps).sum(dim=0), plan.batch)
            row["float_accuracy"] = self._scored(predicted)["accuracy"]
        return row, AutoChoice(calibrated, convert_config, variant, {})

    def finetune(self, timesteps: int, train_data, start: Variant) -> tuple[dict[str, Any], AutoChoice]:
        """``hybrid`` at ``timesteps``: the ``start`` variant converted, fine-tuned on ``train_data``, scored on the
        validation split; the row's variant and the fine-tune's record name the start."""
        variant = start.finetuned()
        calibrated, convert_config, snn = self._converted(variant, timesteps)
        trained, record = finetune_converted(snn, train_data, timesteps=timesteps, budget=self.config.finetune)
        record = {**record, "start": start.label}
        trained.metadata = {**trained.metadata, "hybrid": record}
        row = self._measured(trained.eval(), variant, timesteps, convert_config, "fine-tuned")
        row["train_seconds"] = record["seconds"]
        return row, AutoChoice(calibrated, convert_config, variant, {}, snn=trained, hybrid=record)
