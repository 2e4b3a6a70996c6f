"""Suite-wide set-up: build the native neuron kernels once, before any test looks at a command's stderr.

On a fresh machine the first use of the C++ kernels compiles them (about a minute) and says so on
stderr; doing it here keeps that line out of the tests that check a command prints nothing there.
"""

from __future__ import annotations

import pytest

from spikeconv.neurons.native import native_available


@pytest.fixture(scope="session", autouse=True)
def _native_kernels_built() -> None:
    native_available()  # builds (or finds the cached build, or records that it cannot build) once
