"""The lint engine with small rules of its own: pre-filter, parse, traversal, noqa, AF001."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import libcst as cst
import pytest

from agentfuse.lint.checker import RuleSet, check_source, lint_bytes, lint_text
from agentfuse.lint.config import LintConfig, Selection
from agentfuse.lint.runner import lint_files
from agentfuse.lint_rules.base import Finding, Rule
from agentfuse.lint_rules.llm_calls import UnguardedLlmCall


class DangerCall(Rule):
    """Calls of ``toy.danger`` (under any import alias) are flagged."""

    code = "AF901"
    message = "danger() called"
    triggers = (r"\bdanger\b",)
    VALID = ("danger = 1\n",)
    INVALID = ("from toy import danger\ndanger()  # expect: AF901\n",)

    def visit_Call(self, node: cst.Call) -> None:
        if self.context.imports.resolve(node.func) == "toy.danger":
            self.report(node)


class BravoExploder(Rule):
    """Fails if it ever runs: proves that a rule whose triggers are absent is skipped."""

    code = "AF902"
    message = "bravo"
    triggers = (r"\bbravo\b",)

    def visit_Module(self, node: cst.Module) -> None:
        raise AssertionError("BravoExploder ran on a file without its trigger")


class EveryModule(Rule):
    """No triggers: runs on every file and reports each module with an option's value."""

    code = "AF903"
    message = "module seen"

    def visit_Module(self, node: cst.Module) -> None:
        label = self.context.options.get("label", "none")
        self.report(node, f"module seen, label={label}")


class OffByDefault(Rule):
    """An opinionated rule: only runs when selected."""

    code = "AF904"
    message = "opinion"
    triggers = (r"\bdanger\b",)
    default_enabled = False

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node)


DANGER = "from toy import danger as d\n\nd()\n"


def lint(source: str, *rules: type[Rule], options: dict[str, object] | None = None) -> list[Finding]:
    return lint_text(source, RuleSet.of(rules), path="t.py", options=options or {}).findings


def test_alias_is_resolved_and_position_is_one_based() -> None:
    assert lint(DANGER, DangerCall) == [Finding("t.py", 3, 1, 3, 4, "AF901", "danger() called")]


def test_file_without_trigger_is_never_parsed() -> None:
    broken = "this is not python (\n"
    assert lint(broken, DangerCall) == []
    assert [f.code for f in lint(broken + "danger\n", DangerCall)] == ["AF001"]


def test_rule_whose_triggers_are_absent_does_not_run() -> None:
    assert [f.code for f in lint(DANGER, DangerCall, BravoExploder)] == ["AF901"]
    [finding] = lint(DANGER + "bravo = 1\n", DangerCall, BravoExploder)  # a rule's crash costs the file
    assert finding.code == "AF001"
    assert finding.message.startswith("internal error while analysing the file, please report it: AssertionError")
    assert "BravoExploder ran" in finding.message


def test_rule_without_triggers_runs_on_every_file_and_sees_options() -> None:
    findings = lint("x = 1\n", EveryModule, options={"label": "blue"})
    assert [(f.code, f.message) for f in findings] == [("AF903", "module seen, label=blue")]


def test_check_source_keeps_its_contract() -> None:
    assert [f.line for f in check_source(DANGER, [DangerCall])] == [3]
    with pytest.raises(cst.ParserSyntaxError):
        check_source("def (:\n", [DangerCall])


def test_findings_are_picklable_records() -> None:
    finding = lint(DANGER, DangerCall)[0]
    assert pickle.loads(pickle.dumps(finding)) == finding


@pytest.mark.parametrize(
    ("comment", "suppressed"),
    [
        ("# noqa", True),
        ("# NOQA", True),
        ("# noqa: AF901", True),
        ("# noqa:AF901", True),
        ("# noqa:AF902,AF901", True),
        ("# noqa: AF902 AF901", True),
        ("# noqa: AF9", True),
        ("# noqa: AF", True),
        ("# noqa: AF902", False),
        ("# noqa: E501", False),
        ("# noqa : AF901", True),  # flake8 reads this as a blanket noqa followed by text
        ("# not a noqa", False),
        ("#noqa", False),  # flake8's pattern needs the space after '#'
    ],
)
def test_noqa_comments_read_like_flake8(comment: str, suppressed: bool) -> None:
    findings = lint(f"from toy import danger\ndanger()  {comment}\n", DangerCall)
    assert (findings == []) is suppressed


def test_noqa_on_a_later_line_of_a_bracketed_call_does_not_suppress() -> None:
    source = "from toy import danger\ndanger(\n    1,  # noqa: AF901\n)\n"
    assert [f.line for f in lint(source, DangerCall)] == [2]


def test_noqa_after_a_multiline_string_covers_every_line_of_it() -> None:
    source = 'from toy import danger\nx = danger("""a\nb""")  # noqa: AF901\n'
    assert lint(source, DangerCall) == []


def test_noqa_after_a_backslash_continuation_covers_the_first_line() -> None:
    source = "from toy import danger\nx = danger() + \\\n    1  # noqa\n"
    assert lint(source, DangerCall) == []


def test_flake8_file_level_noqa_skips_the_file() -> None:
    assert lint("# flake8: noqa\n" + DANGER, DangerCall) == []


def test_syntax_error_is_af001_with_cpythons_message_and_line() -> None:
    findings = lint("import danger\nx = (\n", DangerCall)
    assert [(f.code, f.line, f.message) for f in findings] == [
        ("AF001", 2, "cannot parse file: '(' was never closed")
    ]


def test_undecodable_file_is_af001_naming_the_line() -> None:
    data = b"danger = 1\n# caf\xe9\n"
    [finding] = lint_bytes(data, RuleSet.of([DangerCall]), path="t.py", options={}).findings
    assert (finding.code, finding.line) == ("AF001", 2)
    assert finding.message.startswith("cannot decode file:")


def test_encoding_cookie_and_bom_are_honoured() -> None:
    latin = "# -*- coding: latin-1 -*-\nfrom toy import danger\ndanger('café')\n".encode("latin-1")
    bom = b"\xef\xbb\xbf" + DANGER.encode()
    rule_set = RuleSet.of([DangerCall])
    assert [f.line for f in lint_bytes(latin, rule_set, path="t.py", options={}).findings] == [3]
    assert [f.line for f in lint_bytes(bom, rule_set, path="t.py", options={}).findings] == [3]


def test_long_generated_expression_is_linted_not_crashed() -> None:
    """Like sympy's resolvent_lookup.py: a sum nested ~600 levels deep."""
    terms = " + ".join(f"s{i}**2*s{i + 1}" for i in range(600))
    source = f"from toy import danger\nx = {terms} + danger()\n"
    limit = sys.getrecursionlimit()
    assert [f.line for f in lint(source, DangerCall)] == [2]
    assert sys.getrecursionlimit() == limit


def test_brackets_too_deep_for_python_are_af001_not_a_crash() -> None:
    source = "danger = " + "[" * 5000 + "]" * 5000 + "\n"
    [finding] = lint(source, DangerCall)
    assert finding.code == "AF001"
    assert "too many nested parentheses" in finding.message


def test_deep_brackets_inside_strings_are_still_linted() -> None:
    source = "from toy import danger\nx = '" + "(" * 300 + "'\ndanger()\n"
    assert [f.code for f in lint(source, DangerCall)] == ["AF901"]


@pytest.mark.parametrize(
    ("select", "ignore", "code", "default_enabled", "enabled"),
    [
        ((), (), "AF301", True, True),
        ((), (), "AF904", False, False),
        (("AF9",), (), "AF904", False, True),
        (("AF3",), (), "AF401", True, False),
        ((), ("AF4",), "AF401", True, False),
        (("AF",), ("AF40",), "AF401", True, False),
        (("AF401",), ("AF4",), "AF401", True, True),  # the longer prefix wins
        (("AF4",), ("AF4",), "AF401", True, False),
    ],
)
def test_selection_prefixes(
    select: tuple[str, ...], ignore: tuple[str, ...], code: str, default_enabled: bool, enabled: bool
) -> None:
    assert Selection(select, ignore).enabled(code, default_enabled=default_enabled) is enabled


def _tree(root: Path, count: int) -> list[Path]:
    files = []
    for i in range(count):
        path = root / f"pkg{i % 3}" / f"m{i}.py"
        path.parent.mkdir(exist_ok=True)
        body = DANGER * (i % 4) if i % 5 else "import os\n"
        path.write_text(body + ("x = (\n" if i == 7 else ""))
        files.append(path)
    return files


def test_process_pool_gives_the_same_findings_as_one_process(tmp_path: Path) -> None:
    files = _tree(tmp_path, 150)
    config = LintConfig(root=tmp_path)
    rule_set = RuleSet.of([DangerCall])
    serial = lint_files(files, rule_set, config, jobs=1, cwd=tmp_path)
    parallel = lint_files(files, rule_set, config, jobs=2, cwd=tmp_path)
    assert parallel == serial
    assert {f.code for f in serial} == {"AF001", "AF901"}
    assert serial == sorted(serial, key=lambda f: (f.path, f.line, f.col, f.code))


def test_per_file_ignores_match_paths_relative_to_the_config_root(tmp_path: Path) -> None:
    files = _tree(tmp_path, 6)
    config = LintConfig(root=tmp_path, per_file_ignores=(("pkg1/*", ("AF9",)),))
    findings = lint_files(files, RuleSet.of([DangerCall]), config, jobs=1, cwd=tmp_path)
    assert findings and all(not f.path.startswith("pkg1/") for f in findings)


def test_unreadable_file_is_af001(tmp_path: Path) -> None:
    (tmp_path / "dangling.py").symlink_to(tmp_path / "missing.py")
    config = LintConfig(root=tmp_path)
    [finding] = lint_files([tmp_path / "dangling.py"], RuleSet.of([DangerCall]), config, cwd=tmp_path)
    assert (finding.path, finding.code) == ("dangling.py", "AF001")
    assert finding.message.startswith("cannot read file:")


SELF_IMPORTING = """from openai import OpenAI
client = OpenAI()


def load():
    from deepsparse import Pipeline  # the PyPI package; the project index finds this very file
    return Pipeline.create(task="text")


def ask(q):
    return client.chat.completions.create(model="m", messages=[])
"""


def test_a_module_importing_a_name_from_itself_is_analysed_not_refused(tmp_path: Path) -> None:
    (tmp_path / "deepsparse.py").write_text(SELF_IMPORTING)
    config = LintConfig(root=tmp_path)
    findings = lint_files([tmp_path / "deepsparse.py"], RuleSet.of([UnguardedLlmCall]), config, cwd=tmp_path)
    assert [(f.code, f.line) for f in findings] == [("AF101", 11)]
