"""`python -m causalspec.cli ARGS`: the console script without installing it."""

import sys

from causalspec.cli.main import main

sys.exit(main())
