"""Named reference architectures given in layer notation, registered here.

Their notation strings are public so that docs and benchmarks can quote exactly what was built.
"""

from __future__ import annotations

from spikeconv.models.registry import notation_preset, register_model

__all__ = ["DIGITS_CNN", "FMNIST_CNN", "MLP"]

FMNIST_CNN = "32C5-P2-64C5-P2-1024"
"""Fashion-MNIST CNN of Xu, Liu & Yang (arXiv:2112.07426, Table 5); 91.60 % as an ANN there."""

MLP = "512-256"
"""A small two-hidden-layer perceptron."""

DIGITS_CNN = "16C3p1-P2-32C3p1-P2-64"
"""A small padded CNN for 8x8 scikit-learn digits (8 -> 4 -> 2 pixels, 128 -> 64 features)."""

register_model("digits-cnn", notation_preset(DIGITS_CNN))
register_model("fmnist-cnn", notation_preset(FMNIST_CNN))
register_model("mlp", notation_preset(MLP))
