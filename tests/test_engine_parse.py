"""The engine's libcst parse (node validation off while the parser builds the tree)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

import agentfuse
from agentfuse.lint.limits import parse_unvalidated

SOURCES = sorted(Path(agentfuse.__file__).parent.rglob("*.py"))[::7]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_the_tree_is_the_one_libcst_builds_with_validation(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert parse_unvalidated(source).deep_equals(cst.parse_module(source))


def test_validation_is_back_after_a_parse_and_after_a_syntax_error() -> None:
    parse_unvalidated("x = 1\n")
    with pytest.raises(cst.ParserSyntaxError):
        parse_unvalidated("def broken(:\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")
