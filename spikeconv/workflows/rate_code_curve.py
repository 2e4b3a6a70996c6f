"""The ideal rate code's accuracy at several T, beside a converted SNN's simulated curve.

``spikeconv curve SNN --rate-code`` adds, for every converted SNN, the accuracy of
:func:`spikeconv.convert.rate_code_ann` at T = 1, 2, 4, ..., T on the same samples: one ANN pass per
T instead of a simulation. Where the simulated curve lies below it, the loss is timing (transients,
spikes of inactivated neurons); the ideal curve's own gap to the ANN is the code's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spikeconv.convert import ConvertConfig, rate_code_ann
from spikeconv.data import Split, make_loader
from spikeconv.errors import ConfigError
from spikeconv.evaluation import CurveResult, default_table_points
from spikeconv.files import LoadedSnn
from spikeconv.workflows.curve import CurveJob


def rate_code_accuracy(loaded: LoadedSnn, data, steps: Sequence[int], *, batch_size: int = 256) -> list[float]:
    """Accuracy (percent) of the ideal ``T``-step rate code of ``loaded``'s conversion, per T in ``steps``."""
    if loaded.calibrated is None:
        raise ConfigError("the ideal rate code needs a converted SNN; this one was trained directly")
    config = ConvertConfig.from_dict(loaded.snn.metadata["convert"])
    graphs = [rate_code_ann(loaded.calibrated, t, config) for t in steps]
    correct = torch.zeros(len(steps), dtype=torch.long)
    seen = 0
    device = next(iter(loaded.snn.parameters()), torch.empty(0)).device  # where --device put the network
    graphs = [graph.to(device) for graph in graphs]
    with torch.inference_mode():
        for x, y in make_loader(data, batch_size=batch_size, shuffle=False):
            x = x.to(device)
            for i, graph in enumerate(graphs):
                correct[i] += (graph(x).argmax(1).cpu() == y).sum()
            seen += y.numel()
    return [100.0 * int(c) / seen for c in correct]


def rate_code_curve(loaded: LoadedSnn, job: CurveJob, simulated: CurveResult) -> CurveResult:
    """The ideal rate code's accuracy at T = 1, 2, 4, ..., ``job.timesteps``, on ``simulated``'s samples."""
    data = job.data.load(Split.TEST, job.limit, input_shape=tuple(loaded.info["input_shape"]))
    steps = default_table_points(job.timesteps)
    accuracy = rate_code_accuracy(loaded, data, steps, batch_size=job.batch_size)
    return CurveResult(timesteps=tuple(steps), accuracy=tuple(accuracy), ann_accuracy=simulated.ann_accuracy,
                       num_samples=simulated.num_samples, label=f"ideal rate code ({job.snn.name})",
                       extra={"kind": "rate_code_ann", "snn": str(job.snn)})  # fmt: skip
