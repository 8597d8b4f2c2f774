"""`python -m causalspec.cli ARGS`: the console script without installing it."""

import sys

from causalspec.cli.app import main

sys.exit(main())
