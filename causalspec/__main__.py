"""`python -m causalspec ARGS`: the `causalspec` command without the console script."""

import sys

from causalspec.cli.app import main

sys.exit(main())
