"""The harness's options: each one declared once, for pytest and for `python -m harness.external`,
and each names the environment variable that sets it too."""

from __future__ import annotations

import argparse

import pytest

from harness.settings import OPTIONS, add_options

pytestmark = pytest.mark.claim("harness.self_test")


def test_every_option_names_its_environment_variable_in_its_help() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument)
    helps = {action.option_strings[0]: action.help for action in parser._actions[1:]}
    assert set(helps) == {option.flag for option in OPTIONS}
    missing = [option.flag for option in OPTIONS if f"[env {option.env}]" not in helps[option.flag]]
    assert missing == []
