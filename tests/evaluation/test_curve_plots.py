"""curve_figure structure and plot_curves PNG output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from spikeconv.errors import ConfigError
from spikeconv.evaluation import CurveResult, curve_figure, plot_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def curve(label: str, ann: float | None, final: float = 80.0) -> CurveResult:
    return CurveResult(
        timesteps=(1, 2, 4, 8),
        accuracy=(10.0, 30.0, 60.0, final),
        ann_accuracy=ann,
        num_samples=10,
        label=label,
    )


def test_one_line_per_curve_plus_one_per_distinct_ann() -> None:
    fig = curve_figure([curve("a", 90.0), curve("b", 90.0), curve("c", 85.5), curve("d", None)])
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["a", "ANN (90.00%)", "b", "c", "ANN (85.50%)", "d"]
    data_line = ax.get_lines()[0]
    assert list(data_line.get_xdata()) == [1, 2, 4, 8]
    assert list(data_line.get_ydata()) == [10.0, 30.0, 60.0, 80.0]
    ann_line = ax.get_lines()[1]
    assert ann_line.get_linestyle() == "--"
    assert list(ann_line.get_ydata()) == [90.0, 90.0]
    assert ann_line.get_color() == data_line.get_color()
    legend_texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend_texts == labels


def test_axes_scale_labels_and_title() -> None:
    fig = curve_figure(curve("a", 90.0), title="Fashion-MNIST")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "Fashion-MNIST"
    assert ax.get_ylabel() == "accuracy (%)"
    assert ax.get_xlabel() == "timesteps T"
    assert curve_figure(curve("a", None), log_x=False).axes[0].get_xscale() == "linear"


def test_no_pyplot_global_state() -> None:
    curve_figure([curve("a", 90.0)])
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "curve.png"
    plot_curves([curve("a", 90.0), curve("b", None, final=85.0)], path, title="t")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000
    assert [p.name for p in path.parent.iterdir()] == ["curve.png"]


def test_plot_to_folder_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "curve.png"
    target.mkdir()
    with pytest.raises(ConfigError, match="cannot write plot"):
        plot_curves([curve("a", 90.0)], target)
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
    assert not any(target.iterdir())


def test_no_curves_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no curves"):
        plot_curves([], tmp_path / "x.png")
    assert not any(tmp_path.iterdir())
