"""``python -m flowkit`` (and ``torchrun -m flowkit``) runs the command line."""

import sys

from flowkit.cli.main import main

sys.exit(main())
