"""The candidate stage blanks docstrings and comment lines, and never code or strings."""

from __future__ import annotations

import re

import libcst as cst

from agentfuse.lint.checker import RuleSet, lint_text
from agentfuse.lint.prose import without_prose
from agentfuse.lint_rules.base import Rule

SOURCE = '''"""Module doc: kill together."""
# kill this comment
import os  # kill in a trailing comment stays

def f(x):  """one-liner doc next to code stays: kill"""

class C:
    """Class doc
    kill
    """
    x = """
# kill: a string line that looks like a comment
"""
    @decorator(
        # kill in a comment inside the decorator call
    )
    def g(self, a="""
# kill in a default value
"""):
        # kill in the body
        return 1
'''


def kill_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), start=1) if "kill" in line]


def test_docstrings_and_comment_lines_are_blanked_strings_are_not() -> None:
    code = without_prose(SOURCE)
    assert code is not None
    assert len(code.splitlines()) == len(SOURCE.splitlines())
    assert kill_lines(SOURCE) == [1, 2, 3, 5, 9, 12, 15, 18, 20]
    assert kill_lines(code) == [3, 5, 12, 15, 18]  # 15: comments inside a multi-line statement stay


def test_unparsable_source_is_left_to_libcst() -> None:
    assert without_prose("x = (\n") is None


class KillCall(Rule):
    """Flags calls of a function named kill; counts the files it is run on."""

    code = "AF905"
    message = "kill() called"
    triggers = (r"\bkill\b",)

    def visit_Module(self, node: cst.Module) -> None:
        self.report(node, "parsed")

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "kill":
            self.report(node)


def test_a_file_whose_trigger_is_only_in_prose_is_not_parsed() -> None:
    rule_set = RuleSet.of([KillCall])
    prose_only = '"""Never kill."""\n# kill\nx = 1\n'
    assert re.search(r"\bkill\b", prose_only)
    assert lint_text(prose_only, rule_set, path="t.py", options={}).findings == []
    code = '"""Never kill."""\nkill()\n'
    messages = [f.message for f in lint_text(code, rule_set, path="t.py", options={}).findings]
    assert messages == ["parsed", "kill() called"]


def test_stages_never_lose_a_finding_of_any_registered_rule() -> None:
    """Pre-filter and candidate stage are only shortcuts: the registry's examples prove it."""
    import agentfuse.lint_rules as registry
    from agentfuse.lint.checker import check_source
    from agentfuse.lint.noqa import filter_noqa

    for rule in registry.all_rules():
        rule_set = RuleSet.of([rule])
        for example in (*rule.VALID, *rule.INVALID):
            full = filter_noqa(check_source(example, [rule], path="t.py"), example)
            staged = lint_text(example, rule_set, path="t.py", options={}).findings
            assert staged == full, (rule.code, example)
