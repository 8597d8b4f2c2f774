"""The `causalspec` command line: `main.py` parses the arguments and maps errors to exit
codes; each command lives in its own module (`parse`, `graph`, `sample`, `check`, `locate`,
`circuit`). `main` is re-exported here for the console script (`causalspec.cli:main`)."""

from causalspec.cli.main import main

__all__ = ["main"]
