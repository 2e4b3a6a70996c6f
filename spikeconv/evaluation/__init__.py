"""Evaluation: timestep–accuracy curves, spike and operation counts, energy, comparison reports and plots."""

from spikeconv.evaluation.compare_plots import accuracy_figure, energy_figure, save_figure, spike_rate_figure
from spikeconv.evaluation.compare_report import accuracy_table, ann_result, build_report, report_markdown, snn_result
from spikeconv.evaluation.counters import OperationCounter, count_operations, counts_bytes_per_step
from spikeconv.evaluation.curve import (
    CurveResult,
    ann_accuracy,
    as_curve_list,
    timestep_accuracy_curve,
)
from spikeconv.evaluation.energy import HOROWITZ_2014, EnergyModel
from spikeconv.evaluation.fanout import dense_ops, fanout_map
from spikeconv.evaluation.gap import GapResult, GapTally, LayerGap, format_gap_table
from spikeconv.evaluation.memory import BUDGET_ENV, MemoryBudget, SimulationFootprint, check_curve_memory, measure_footprint
from spikeconv.evaluation.op_counts import LayerOps, NeuronOps, OperationCounts
from spikeconv.evaluation.plots import curve_figure, plot_curves
from spikeconv.evaluation.report_io import (
    default_table_points,
    format_curve_table,
    read_curve_json,
    read_curves_json,
    write_curve_json,
)

__all__ = [
    "BUDGET_ENV",
    "HOROWITZ_2014",
    "MemoryBudget",
    "SimulationFootprint",
    "check_curve_memory",
    "counts_bytes_per_step",
    "measure_footprint",
    "CurveResult",
    "EnergyModel",
    "GapResult",
    "GapTally",
    "LayerGap",
    "LayerOps",
    "NeuronOps",
    "OperationCounter",
    "OperationCounts",
    "accuracy_figure",
    "accuracy_table",
    "ann_result",
    "build_report",
    "count_operations",
    "dense_ops",
    "energy_figure",
    "fanout_map",
    "report_markdown",
    "save_figure",
    "snn_result",
    "spike_rate_figure",
    "ann_accuracy",
    "as_curve_list",
    "curve_figure",
    "default_table_points",
    "format_curve_table",
    "format_gap_table",
    "plot_curves",
    "read_curve_json",
    "read_curves_json",
    "timestep_accuracy_curve",
    "write_curve_json",
]
