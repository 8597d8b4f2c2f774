"""The `causalspec` command line: `app.py` builds the argument parser from the command table
and maps errors to exit codes; `base.py` holds what every command shares; each command lives
in its own module (`parse`, `graph`, `sample`, `check`, `locate`, `circuit`, `fmt`);
`options.py` declares the check options the CLI and the pytest plugin both offer.

`main` (the console script `causalspec.cli:main`) is loaded on first use: the pytest plugin
imports `causalspec.cli.options` in every pytest session, and must not pay for every command.
The module is `app.py`, not `main.py`, so that `causalspec.cli.main` is always the function.
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from causalspec.cli.app import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
