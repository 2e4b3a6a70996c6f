"""``python -m spikeconv``: the same command line as ``spikeconv``, and what ``torchrun -m spikeconv`` starts."""

import sys

from spikeconv.cli import main

sys.exit(main())
