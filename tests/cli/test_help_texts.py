"""`causalspec COMMAND --help` is where a newcomer looks first: every option of every command
(and of every `circuit` action) says what it does."""

from __future__ import annotations

import argparse

from causalspec.cli.app import build_parser


def _options_without_help(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                missing += _options_without_help(sub, f"{name} {sub_name}")
        elif action.option_strings and not action.help:
            missing.append(f"{name} {'/'.join(action.option_strings)}")
    return missing


def test_every_option_of_every_command_has_a_help_text():
    assert _options_without_help(build_parser(), "causalspec") == []
