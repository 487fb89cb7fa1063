"""The engine's own traversal visits exactly what libcst's does, in the same order."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from agentfuse.lint.traversal import _BatchedVisitor, node_child_fields, visitor_method_names

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted(Path(cst.__file__).parent.glob("_nodes/*.py")), *sorted((ROOT / "agentfuse").rglob("*.py"))]
SOURCES += [ROOT / "tests" / "data" / "trees" / "parity" / "agents" / "writer.py"]
CHILD_FIELDS = node_child_fields()


def _recorder(events: list[tuple[str, int]], *, trivia: bool) -> dict[str, list]:
    """Methods for every node type (trivia too, or only the rest); each records its call."""
    methods: dict[str, list] = {}
    for kind in CHILD_FIELDS:
        if trivia or kind.__name__ not in {"SimpleWhitespace", "Comma", "Newline", "LeftParen"}:
            methods[f"visit_{kind.__name__}"] = [lambda n: events.append(("visit", id(n)))]
            methods[f"leave_{kind.__name__}"] = [lambda n: events.append(("leave", id(n)))]
    return methods


@pytest.mark.parametrize("trivia", [True, False], ids=["every-node", "skipping-trivia"])
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_walk_matches_libcst_visit(path: Path, trivia: bool) -> None:
    module = cst.parse_module(path.read_text())
    by_libcst: list[tuple[str, int]] = []
    by_walk: list[tuple[str, int]] = []
    module.visit(_BatchedVisitor(_recorder(by_libcst, trivia=trivia)))
    _BatchedVisitor(_recorder(by_walk, trivia=trivia), CHILD_FIELDS).walk(module)
    assert by_walk == by_libcst
    assert by_walk


def test_libcst_visitor_bases_define_only_no_op_visits() -> None:
    """What lets ``visitor_method_names`` skip libcst's classes."""
    for base in (cst.CSTVisitor, cst.BatchableCSTVisitor, cst.CSTTransformer):
        for klass in base.__mro__:
            defined = [
                name
                for name, value in vars(klass).items()
                if name.startswith(("visit_", "leave_")) and not getattr(value, "_is_no_op", False)
            ]
            assert defined == [], klass


def test_visitor_method_names_are_the_non_stub_methods_dir_lists() -> None:
    from agentfuse.lint_rules import all_rules
    from agentfuse.lint_rules.base import ImportCollector

    for visitor in (*all_rules(), ImportCollector):
        expected = tuple(
            name
            for name in dir(visitor)
            if name.startswith(("visit_", "leave_"))
            and callable(getattr(visitor, name))
            and not getattr(getattr(visitor, name), "_is_no_op", False)
        )
        assert visitor_method_names(visitor) == expected
