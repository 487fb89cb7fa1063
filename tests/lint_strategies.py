"""Generated Python for fuzzing the linter, and the properties every program must have.

Shared by tests/test_lint_fuzz.py (a short run) and bench/lint_fuzz.py (a long one).
Every program ends with :data:`TRIGGERS`, two calls the rules must find, so each file gets
past the pre-filter and through libcst and every rule, whatever the generator wrote above.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import tempfile
from pathlib import Path

import hypothesmith
from hypothesis import strategies as st

from agentfuse.cli import main
from agentfuse.lint import limits

TRIGGERS = 'import openai\nimport subprocess\nopenai.chat.completions.create()\nsubprocess.run(["rm", "-rf", "/"])\n'
TRIGGER_CODES = frozenset({"AF101", "AF401"})

EXPRESSION_KINDS: dict[str, str] = {
    "unary": "-{}",
    "not": "not {}",
    "lambda": "lambda: {}",
    "attribute": "{}.a",
    "call": "{}()",
    "subscript": "{}[0]",
    "plus": "{} + a",
    "power": "a ** {}",
    "and": "{} and a",
    "or": "a or {}",
    "compare": "{} < a",
    "ifexp": "a if b else {}",
    "walrus": "(y := {})",
    "list": "[{}]",
    "await": "await ({})",
}
"""How one nesting level of each kind wraps the expression inside it."""
STATEMENT_KINDS = ("elif", "if", "def", "strings", "import", "comprehension")
MAX_INDENT_LEVELS = 120


@dataclasses.dataclass(frozen=True)
class Segment:
    """``count`` nesting levels of one kind."""

    kind: str
    count: int


def deep_source(segments: list[Segment]) -> str:
    """A module nesting the segments' kinds inside each other (the first one innermost).

    Expression kinds build one expression, parenthesised at each change of kind (a handful
    of brackets); statement kinds each add a block of their own.
    """
    expression = "x"
    blocks = []
    for index, segment in enumerate(segments):
        if segment.kind in EXPRESSION_KINDS:
            template = EXPRESSION_KINDS[segment.kind]
            expression = f"({expression})" if index else expression
            for _ in range(segment.count):
                expression = template.format(expression)
        else:
            blocks.append(_statement_block(segment))
    body = f"async def deep():\n    return {expression}\n"
    return "".join(blocks) + body + TRIGGERS


def _statement_block(segment: Segment) -> str:
    n = segment.count
    if segment.kind == "elif":
        return "if a:\n    pass\n" + "".join(f"elif a == {i}:\n    pass\n" for i in range(n)) + "else:\n    pass\n"
    if segment.kind in ("if", "def"):  # CPython refuses more than 100 levels; the text grows as n squared
        n = min(n, MAX_INDENT_LEVELS)
        header = "if a:" if segment.kind == "if" else "def f():"
        return "".join(" " * i + header + "\n" for i in range(n)) + " " * n + "pass\n"
    if segment.kind == "strings":
        return "text = (\n" + "".join(f'    "piece {i} "\n' for i in range(n)) + ")\n"
    if segment.kind == "import":
        return "import a" + ".b" * n + "\n"
    if segment.kind == "comprehension":
        return "values = [x" + " for x in y" * max(n, 1) + "]\n"
    raise ValueError(segment.kind)


def segments(max_count: int, max_segments: int = 4) -> st.SearchStrategy[list[Segment]]:
    """Lists of segments: any kind, up to ``max_count`` levels each."""
    kinds = st.sampled_from([*EXPRESSION_KINDS, *STATEMENT_KINDS])
    segment = st.builds(Segment, kinds, st.integers(min_value=1, max_value=max_count))
    return st.lists(segment, min_size=1, max_size=max_segments)


def deep_programs(shallow: int = 60, deep: tuple[int, ...] = (1500, 4000)) -> st.SearchStrategy[str]:
    """Deep modules: mostly segments up to ``shallow`` levels, some far beyond the limit."""
    below = st.integers(min_value=1, max_value=shallow)
    counts = st.one_of(below, below, below, st.sampled_from(deep))  # one segment in four is far too deep
    segment = st.builds(Segment, st.sampled_from([*EXPRESSION_KINDS, *STATEMENT_KINDS]), counts)
    return st.lists(segment, min_size=1, max_size=3).map(deep_source)


def grammar_programs() -> st.SearchStrategy[str]:
    """hypothesmith's programs (valid per CPython's grammar), each followed by the triggers."""
    return st.one_of(hypothesmith.from_grammar(), hypothesmith.from_node()).map(_with_triggers)


def _with_triggers(source: str) -> str:
    return source + ("" if not source or source.endswith("\n") else "\n") + TRIGGERS


def cpython_accepts(source: str) -> bool:
    """CPython's parser takes the module (libcst should then too, within its depth limit)."""
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


TOO_DEEP = "file is too deeply nested to analyse"


def lint_in_process(source: str) -> tuple[int, list[dict[str, object]], str]:
    """``agentfuse lint --format json FILE`` through the CLI's ``main``: status, records, stderr."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.py"
        path.write_text(source, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["lint", "--format", "json", "--max-file-bytes", "0", "--no-cache", str(path)])
    return status, json.loads(out.getvalue()), err.getvalue()


def outcome(source: str, status: int, records: list[dict[str, object]], stderr: str) -> str:
    """Check what every program must get, and name the outcome: ``analysed``, ``refused``
    (one AF001) or ``clean``. Assertion errors say what went wrong.

    Any program: status 0 or 1 matching the findings, no traceback, no "internal error",
    and a refused file has that one AF001 and nothing else. A program CPython accepts and
    the engine's depth estimate allows is analysed: its triggers are found, no AF001.
    """
    assert status in (0, 1), stderr
    assert "Traceback" not in stderr, stderr
    assert status == (1 if records else 0)
    codes = {str(record["code"]) for record in records}
    refused = [record for record in records if record["code"] == "AF001"]
    assert not any("internal error" in str(record["message"]) for record in refused), refused
    if refused:
        assert records == refused and len(refused) == 1, records
        message = str(refused[0]["message"])
        assert message.startswith((TOO_DEEP, "cannot parse file:")), message
    if cpython_accepts(source) and limits.nesting_depth(limits.python_tree(source))[0] <= limits.MAX_DEPTH:
        assert "AF001" not in codes and TRIGGER_CODES <= codes, records
    return "refused" if refused else "analysed" if records else "clean"
