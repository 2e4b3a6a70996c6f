"""Reset and charge rules and kernel choices, as types rather than strings (sinabs' reset mechanisms)."""

from __future__ import annotations

from spikeconv._names import NamedEnum


class Reset(NamedEnum):
    """What happens to the membrane after a spike.

    ``SUBTRACT`` (reset by subtraction, "soft") keeps the charge above threshold, which is what
    makes a converted IF neuron's rate track a ReLU (Rueckauer et al. 2017). ``ZERO`` ("hard")
    discards it; it is the classic direct-training neuron and a conversion ablation.
    """

    SUBTRACT = "subtract"
    ZERO = "zero"


class Charge(NamedEnum):
    """How the membrane integrates input: ``IF`` adds it (addition only, hardware friendly);
    ``LIF`` leaks towards it with time constant τ (more biological)."""

    IF = "if"
    LIF = "lif"


class Kernel(NamedEnum):
    """How a neuron runs its time loop.

    ``REFERENCE`` calls the pure step function once per timestep (obviously correct, allocates).
    ``TORCH`` is the pure-torch fast path (preallocated buffers, in-place ops; always available),
    ``NATIVE`` the C++ loops of :mod:`spikeconv.neurons.native` (falling back to ``TORCH`` where
    they cannot run), and ``INPLACE``, the default, the fastest of the two that applies. Every one
    is bit-identical to ``REFERENCE`` (see :mod:`spikeconv.neurons.kernels`).
    """

    REFERENCE = "reference"
    INPLACE = "inplace"
    TORCH = "torch"
    NATIVE = "native"


class SinCorrection(NamedEnum):
    """How a converted IF neuron takes back spikes it should not have emitted.

    A neuron whose ANN activation is 0 (an *inactivated* neuron) can still fire early in a
    simulation, when positive inputs arrive before the negative ones that cancel them; those
    spikes of inactivated neurons (SIN) are never retracted by a plain IF neuron and accumulate
    through depth (Li et al., SpiCalib, arXiv:2207.02702).

    ``NONE`` is the ordinary IF neuron. ``SIGNED`` lets a neuron emit a negative spike (−θ) when
    its membrane falls a full rounding interval below its start while it has net positive spikes
    outstanding, so its spike count tracks the rounded running mean of its input and never goes
    below zero. ``ISI`` is the SpiCalib heuristic: a neuron that stays silent longer than its
    mean inter-spike interval (plus an allowance) retracts one spike.
    """

    NONE = "none"
    SIGNED = "signed"
    ISI = "isi"
