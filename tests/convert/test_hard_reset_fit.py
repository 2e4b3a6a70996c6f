"""The hard-reset fit (convert/hard_reset_fit.py): θ, spike value and bias per channel, by simulating the target's neuron."""

from __future__ import annotations

import pytest
import torch

from spikeconv.calibration import CalibrationConfig, calibrate, plan_of, prepare, threshold_rule_from_dict
from spikeconv.convert import ConvertConfig, Correction, CorrectionConfig, convert, correct
from spikeconv.convert.for_target import config_for_target, settings_for_target
from spikeconv.convert.hard_reset_fit import FRACTIONS, MULTIPLIERS
from spikeconv.convert.methods import method_settings
from spikeconv.data import Split, load_dataset
from spikeconv.files.targets import TARGETS
from spikeconv.ingest import ingest_module
from spikeconv.models import build_model

STEPS = 4


def _setup():
    torch.manual_seed(0)
    model = build_model("digits-cnn", input_shape=(1, 8, 8), num_classes=10).eval()
    data = load_dataset("digits", split=Split.TRAIN)
    x = torch.stack([data[i][0] for i in range(96)])
    rule = threshold_rule_from_dict({"kind": "mse", "per_channel": True, "timesteps": STEPS})
    calibrated = calibrate(prepare(ingest_module(model), CalibrationConfig(default=rule)), [x])
    config, _ = config_for_target(ConvertConfig(), TARGETS["snntorch"].rules, timesteps=STEPS)
    return model, x, calibrated, config


def test_the_fit_brings_a_hard_reset_network_closer_to_its_ann():
    model, x, calibrated, config = _setup()
    fitted = correct(calibrated, [x], CorrectionConfig(Correction.HARD_RESET, timesteps=STEPS, max_samples=64), config)
    biased = correct(calibrated, [x], CorrectionConfig(Correction.BIAS, timesteps=STEPS, max_samples=64), config)
    with torch.no_grad():
        logits = model(x)
        errors = [float(((convert(c, config)(x, STEPS).mean(0) - logits) ** 2).mean()) for c in (fitted, biased)]
    assert errors[0] < 0.8 * errors[1], errors  # the readout after T steps: the fit's is the closer one
    plan, before = plan_of(fitted), plan_of(calibrated)
    assert plan.extra["correction"]["kind"] == "hard-reset"
    for site in plan.sites:
        record, theta, old = plan.corrections[site], torch.tensor(plan.thresholds[site]), torch.tensor(before.thresholds[site])
        assert len(record["spike_value"]) == len(theta) and min(record["spike_value"]) > 0
        assert all(any(abs(r - m) < 1e-5 for m in MULTIPLIERS) for r in (theta / old).tolist())  # θ' = m·θ
        total = (torch.tensor(record["bias"]).reshape(-1) / theta + config.start_shift) * STEPS  # the layer's bias in all, f·θ'/T
        assert all(any(abs(f - g) < 1e-4 for g in FRACTIONS) for f in total.expand_as(theta).tolist())


def test_a_hard_reset_target_gets_the_fit_and_a_soft_reset_one_the_bias_correction():
    for target, kind in (("snntorch", Correction.HARD_RESET), ("norse", Correction.HARD_RESET), ("sinabs", Correction.BIAS)):
        settings = method_settings("calibrated", ConvertConfig(target=TARGETS[target].rules), target_timesteps=STEPS)
        assert settings.correction.kind is kind and settings.convert.start_shift == pytest.approx(0.5 / STEPS)
        assert settings_for_target(settings, TARGETS[target].rules, timesteps=STEPS) == settings  # made the target's once
    assert method_settings("rate", ConvertConfig(target=TARGETS["snntorch"].rules), target_timesteps=STEPS).correction is None
