"""Calibration: observe activations on data and turn them into a ThresholdPlan."""

from spikeconv.calibration.config import (
    THRESHOLD_RULES,
    CalibrationConfig,
    LearnedThreshold,
    MaxThreshold,
    MseThreshold,
    PercentileThreshold,
    ThresholdRule,
    available_threshold_rules,
    register_threshold_rule,
    threshold_rule_from_dict,
)
from spikeconv.calibration.observers import FixedObserver, MaxObserver, MseObserver, Observer, PercentileObserver
from spikeconv.calibration.plan import ThresholdPlan
from spikeconv.calibration.prepare import (
    OBSERVERS_KEY,
    PLAN_KEY,
    SITES_KEY,
    STAGE_KEY,
    attach_plan,
    calibrate,
    observer_of,
    plan_of,
    prepare,
    recalibrate,
    sharing_layers,
)

__all__ = [
    "OBSERVERS_KEY",
    "PLAN_KEY",
    "SITES_KEY",
    "STAGE_KEY",
    "THRESHOLD_RULES",
    "CalibrationConfig",
    "FixedObserver",
    "LearnedThreshold",
    "MaxObserver",
    "MaxThreshold",
    "MseObserver",
    "MseThreshold",
    "Observer",
    "PercentileObserver",
    "PercentileThreshold",
    "ThresholdPlan",
    "ThresholdRule",
    "attach_plan",
    "available_threshold_rules",
    "calibrate",
    "recalibrate",
    "sharing_layers",
    "observer_of",
    "plan_of",
    "prepare",
    "register_threshold_rule",
    "threshold_rule_from_dict",
]
