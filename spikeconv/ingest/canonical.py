"""The canonical ANN graph: the one form that calibration and conversion accept.

Both :func:`~spikeconv.ingest.ingest_module` and :func:`~spikeconv.ingest.ingest_onnx` end here,
so nothing downstream knows where a graph came from. A canonical graph is an ``fx.GraphModule``
in eval mode whose ``meta`` holds:

- ``spikeconv_stage``: ``"ann"``;
- ``spikeconv_sites``: the activation call-site names (``call_module`` targets), in graph order;
- ``spikeconv_site_caps``: site name -> cap ``c`` for sites that clamp at ``c`` (ReLU6,
  clamp(0, c)); the site module is ``nn.Hardtanh(0, c)``. A threshold above ``c`` could never be
  reached by the ANN activation, so calibration may clamp thresholds to it (observers placed after
  the site already see the clamped values).
"""

from __future__ import annotations

import logging
import math

from torch import fx

from spikeconv.ingest.passes import canonicalize_relus_, fold_batchnorm_, remove_dropout_
from spikeconv.ingest.support import check_supported
from spikeconv.ingest.transformer import OPERATORS_KEY, canonicalize_transformer_, insert_spike_sites_, operator_sites

logger = logging.getLogger("spikeconv")

STAGE_KEY = "spikeconv_stage"
SITES_KEY = "spikeconv_sites"
CAPS_KEY = "spikeconv_site_caps"


def make_canonical_(gm: fx.GraphModule, *, where: str) -> fx.GraphModule:
    """Check support, then drop dropout, fold BatchNorm and make every activation site its own module.

    Args:
        gm: A traced graph that nothing else holds (a copy of the user's model).
        where: The model or file named in errors and logs.

    Raises:
        UnsupportedLayerError: listing every unsupported node, before anything is changed.
    """
    check_supported(gm, where=where)
    canonicalize_transformer_(gm)  # attention split, one module per LayerNorm/GELU/softmax/product (ingest/transformer.py)
    remove_dropout_(gm)
    folded = fold_batchnorm_(gm)
    insert_spike_sites_(gm)  # transformers only: signed site pairs in front of affine layers fed by graded values
    caps = canonicalize_relus_(gm)
    gm.graph.lint()
    gm.recompile()
    gm.meta[STAGE_KEY] = "ann"
    gm.meta[SITES_KEY] = tuple(caps)
    gm.meta[CAPS_KEY] = {site: cap for site, cap in caps.items() if cap != math.inf}
    gm.meta[OPERATORS_KEY] = operator_sites(gm)
    logger.info("ingested %s: %d activation sites (%d capped), %d BatchNorm folded",
                where, len(caps), len(gm.meta[CAPS_KEY]), folded)  # fmt: skip
    return gm.eval()


def activation_sites(gm: fx.GraphModule) -> tuple[str, ...]:
    """The activation call-site names of a canonical graph, in graph order."""
    return tuple(gm.meta.get(SITES_KEY, ()))
