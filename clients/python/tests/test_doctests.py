"""The examples in the package's docstrings run and hold (against the installed package)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "quorate.client",
    "quorate.config",
    "quorate.descriptors",
    "quorate.errors",
    "quorate._leases",
    "quorate.headers",
    "quorate.asgi.identity",
    "quorate.backoff.hints",
    "quorate.backoff.policy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples left"
    assert result.failed == 0
