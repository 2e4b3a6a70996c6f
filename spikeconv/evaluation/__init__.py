"""Evaluation: timestep–accuracy curves of spiking networks, their JSON files, tables and plots."""

from spikeconv.evaluation.curve import (
    CurveResult,
    ann_accuracy,
    as_curve_list,
    timestep_accuracy_curve,
)
from spikeconv.evaluation.plots import curve_figure, plot_curves
from spikeconv.evaluation.report_io import (
    default_table_points,
    format_curve_table,
    read_curve_json,
    read_curves_json,
    write_curve_json,
)

__all__ = [
    "CurveResult",
    "ann_accuracy",
    "as_curve_list",
    "curve_figure",
    "default_table_points",
    "format_curve_table",
    "plot_curves",
    "read_curve_json",
    "read_curves_json",
    "timestep_accuracy_curve",
    "write_curve_json",
]
