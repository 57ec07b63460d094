"""``python -m mireg`` (and ``torchrun -m mireg``) runs the ``mireg`` command."""

import sys

from mireg.cli import main

sys.exit(main())
