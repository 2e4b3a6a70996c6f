"""Several SNN files on the same test data: one table, one JSON, one overlaid plot.

``spikeconv curve A.pt B.pt C.pt --plot p.png`` compares conversion methods (or a conversion
with a directly trained SNN) on identical samples; each curve is computed exactly as
:func:`spikeconv.workflows.curve.curve_job` computes a single one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from spikeconv._io import output_set
from spikeconv._outputs import check_outputs
from spikeconv.errors import ConfigError
from spikeconv.evaluation import CurveResult, MemoryBudget, check_curve_memory, plot_curves, write_curve_json
from spikeconv.files import load_snn
from spikeconv.workflows.curve import CurveJob, curve_of_loaded
from spikeconv.workflows.float_weights import float_weights_curve, integer_bits
from spikeconv.workflows.jobs import write_main
from spikeconv.workflows.rate_code_curve import rate_code_curve


def curve_label(path: Path, info: dict) -> str:
    """``file (method)`` for converted SNNs that record their method, else the file name."""
    method = info.get("method")
    return f"{path.name} ({method})" if method else path.name


def curves_job(snns: Sequence[Path], job: CurveJob, *, progress: bool = True) -> list[CurveResult]:
    """The curve of every file in ``snns`` with ``job``'s data and T; outputs hold all of them.

    With one file the JSON keeps the single-curve layout of :func:`curve_job`; with several it is
    the ``"curves"`` layout of :func:`spikeconv.evaluation.write_curve_json`. Every file is
    loaded (and checked against the data) before the first simulation starts.

    With ``job.rate_code`` every converted SNN's curve is followed by its ideal rate code's
    (:func:`spikeconv.workflows.rate_code_curve.rate_code_curve`); directly trained SNNs have none.

    Raises:
        ConfigError: No SNN file, the same file twice, or ``rate_code`` without a converted SNN.
        OutputError: ``--json`` or ``--plot`` is an SNN file, a folder, the other output, or not
            writable (checked before any file is read).
    """
    paths = [Path(p) for p in snns]
    if not paths:
        raise ConfigError("give at least one SNN file")
    if len({p.resolve() for p in paths}) != len(paths):
        raise ConfigError("the same SNN file is given twice")
    check_outputs({"--json": job.json_path, "--plot": job.plot_path}, [*paths, *job.data.input_files()])
    check_curve_memory(job.timesteps, budget=MemoryBudget())  # an absurd T fails before any file is read
    loaded = [load_snn(p) for p in paths]
    if job.rate_code and all(snn.calibrated is None for snn in loaded):
        raise ConfigError("--rate-code needs at least one converted SNN; these were all trained directly")
    several = len(paths) > 1 or job.rate_code or any(integer_bits(snn) is not None for snn in loaded)
    results = []
    for path, snn in zip(paths, loaded, strict=True):
        single = replace(job, snn=path, json_path=None, plot_path=None)
        result = curve_of_loaded(snn, single, progress=progress)
        results.append(replace(result, label=curve_label(path, snn.info)) if several else result)
        own = results[-1]
        if job.rate_code and snn.calibrated is not None:
            results.append(rate_code_curve(snn, single, result))
        if integer_bits(snn) is not None:  # --weight-bits: the float-weight network beside it
            results.append(float_weights_curve(snn, single, own))
    write_main(lambda: _write_outputs(results, paths, job))
    return results


def _write_outputs(results: list[CurveResult], paths: list[Path], job: CurveJob) -> None:
    with output_set():  # the JSON and the plot appear together or not at all
        if job.json_path is not None:
            write_curve_json(results[0] if len(results) == 1 else results, job.json_path)
        if job.plot_path is not None:
            title = f"{paths[0].name} on {job.data.name}" if len(paths) == 1 else f"{len(paths)} SNNs on {job.data.name}"
            plot_curves(results, job.plot_path, title=title)
