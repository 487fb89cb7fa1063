"""What libcst cannot take, and how the engine stays inside it.

libcst's native parser recurses once per nesting level and has no depth guard (except for
adjacent strings and comprehension clauses, which it refuses beyond 3,000): a deep
expression overflows the C stack and kills the process, and its time grows with the square
of the depth. Its Python side (visitors, positions) recurses about three frames per level.
So before libcst sees a file the engine estimates how deep its tree will nest:

- from CPython's ``ast`` (:func:`nesting_depth`), counting what ``ast`` keeps flat but
  libcst nests (``a and b and ...``, dotted import names, comprehension clauses);
- when ``ast`` cannot parse the file, from its tokens (:func:`token_nesting_bound`).

Up to ``FAST_DEPTH`` (real code stays under 30) libcst runs in the calling thread; deeper,
up to ``MAX_DEPTH``, in a thread with a 512 MB stack and a raised recursion limit
(:func:`call_with_stack`); deeper still, the file is not parsed (AF001). The thresholds
and the crash depths they keep clear of are measured in bench/RESULTS.md ("Lint robustness").
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import sys
import threading
import tokenize
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import libcst as cst

FAST_DEPTH = 100
"""Estimated depths up to this run libcst in the calling thread."""
MAX_DEPTH = 1000
"""Deeper files get AF001 instead of a parse: libcst takes seconds per file near this depth
and crashes (even with the big stack) far beyond it."""
DEEP_STACK_BYTES = 512 * 1024 * 1024
DEEP_RECURSION_LIMIT = 60_000
PYTHON_MAX_BRACKET_DEPTH = 200
"""CPython's tokenizer refuses deeper bracket nesting."""
STRING_RUN_CHUNK = 1000
"""When libcst refuses a run of adjacent strings (more than 3,000, a syntax error to it, not
a crash), the run is split into runs of at most this many."""

_NOT_BRACKET = re.compile(r"[^()\[\]{}]+")
_NESTING_WORDS = frozenset(
    {"and", "or", "not", "lambda", "if", "else", "await", "yield", "in", "is", "for", "async", "from", "import"}
)
_STRING_TOKENS = frozenset({tokenize.STRING})
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ tokenizes f-strings in parts
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
_GAP_TOKENS = frozenset({tokenize.NL, tokenize.COMMENT})

T = TypeVar("T")


class DeepStackUnavailable(RuntimeError):
    """No thread with a big stack could be started (memory limits)."""


class TooDeep(ValueError):
    """The file would nest deeper than libcst can parse safely; not parsed."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


def parse_module(source: str, tree: ast.Module | Exception | None = None) -> cst.Module:
    """libcst's parse of ``source``, never a crash: deep files raise :class:`TooDeep`.

    For every parse outside :func:`agentfuse.lint.checker.lint_text` (the project index's
    reads of imported modules), so that no file can crash the process.

    ``tree`` is CPython's parse of the same text when the caller has it. Also raises
    libcst's ``ParserSyntaxError`` and CPython's ``SyntaxError`` for invalid code.
    """
    if tree is None:
        tree = python_tree(source)
    depth = checked_depth(source, tree)
    try:
        module, _ = call_with_stack(depth > FAST_DEPTH, libcst_parse, source, isinstance(tree, ast.Module))
    except DeepStackUnavailable as exc:
        raise TooDeep(str(exc)) from None
    return module


def checked_depth(source: str, tree: ast.Module | Exception) -> int:
    """The estimated nesting depth of ``source``; :class:`TooDeep` (or CPython's
    ``SyntaxError``, for a file CPython rejects anyway) beyond ``MAX_DEPTH``."""
    if isinstance(tree, (RecursionError, MemoryError)):
        raise TooDeep("CPython's parser gives up on it too")
    if isinstance(tree, ast.Module):
        depth, line = nesting_depth(tree)
    else:
        depth, line = token_nesting_bound(source), 1
    if depth <= MAX_DEPTH:
        return depth
    if isinstance(tree, SyntaxError):
        raise tree
    raise TooDeep(f"it nests {depth} levels deep, more than the {MAX_DEPTH} agentfuse parses", line)


def libcst_parse(source: str, valid_python: bool = False) -> tuple[cst.Module, bool]:
    """``cst.parse_module`` after the bracket check, and whether the tree is of ``source``
    itself: when libcst refuses a run of adjacent strings that CPython accepted
    (``valid_python``), the tree is of :func:`split_string_runs`'s text (never to be
    written back: fixes are off for it)."""
    import libcst as cst  # here, not at the top: the pre-filter imports this module

    if bracket_depth(source) > PYTHON_MAX_BRACKET_DEPTH:
        ast.parse(source)  # raises CPython's "too many nested parentheses" SyntaxError
    try:
        return parse_unvalidated(source), True
    except cst.ParserSyntaxError:
        split = split_string_runs(source) if valid_python else None
        if split is None:
            raise
    return parse_unvalidated(split), False


def parse_unvalidated(source: str) -> cst.Module:
    """``cst.parse_module`` without the check each node's constructor runs on its fields.

    libcst validates every node it builds (``CSTNode.__post_init__`` calls ``_validate``),
    which guards trees built by hand; the parser's own output is valid by construction, and
    the checks cost about a fifth of the parse. The hook is swapped only around the parse,
    and only while it is the one-line call it has always been.
    """
    import libcst as cst
    from libcst._nodes.base import CSTNode

    hook = CSTNode.__post_init__
    if getattr(getattr(hook, "__code__", None), "co_names", None) != ("_validate",):
        return cst.parse_module(source)
    CSTNode.__post_init__ = _no_validation  # type: ignore[method-assign]
    try:
        return cst.parse_module(source)
    finally:
        CSTNode.__post_init__ = hook  # type: ignore[method-assign]


def _no_validation(self: object) -> None:
    """``CSTNode.__post_init__`` while the parser builds a tree."""


def python_tree(source: str) -> ast.Module | Exception:
    """CPython's parse of ``source``, or the error it raised (never raises itself).

    Quietly: the parser warns about the code it reads (``"\\d"`` is a SyntaxWarning from
    Python 3.12), which is the user's business, not the linter's output.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return exc


def nesting_depth(tree: ast.AST) -> tuple[int, int]:
    """How deep libcst's tree of this module will nest, estimated from CPython's tree, and
    the line where it is deepest.

    ``ast`` nests most constructs as libcst does (one level per attribute, call, operator,
    lambda, ``elif``...); where it keeps a flat list libcst builds a chain, the list's
    length is added.
    """
    deepest = deepest_line = 0
    pending: list[tuple[ast.AST, int, int]] = [(tree, 0, 1)]
    pop, push, node_type, node_list = pending.pop, pending.append, ast.AST, list
    while pending:
        node, depth, line = pop()
        kind = type(node)
        if kind is ast.BoolOp:
            depth += len(node.values) - 1  # type: ignore[attr-defined]
        elif kind is ast.alias:
            depth += node.name.count(".")  # type: ignore[attr-defined]
        elif kind is ast.ImportFrom:
            depth += (node.module or "").count(".")  # type: ignore[attr-defined]
        elif kind in _COMPREHENSIONS:
            depth += len(node.generators) - 1  # type: ignore[attr-defined]
        if depth > deepest:
            deepest, deepest_line = depth, getattr(node, "lineno", line)
        depth += 1
        line = getattr(node, "lineno", line)
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, node_type):
                push((value, depth, line))
            elif type(value) is node_list:
                for item in value:
                    if isinstance(item, node_type):
                        push((item, depth, line))
    return deepest, deepest_line


_COMPREHENSIONS = frozenset({ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp})


def token_nesting_bound(source: str) -> int:
    """An upper bound of the nesting depth for a file ``ast`` cannot parse.

    Nesting grows by at least one token per level, so it is bounded by the tokens of the
    longest logical line, plus indentation and ``elif`` chains; when the tokenizer fails
    too, by the count of punctuation characters and keywords in the whole text.
    """
    longest = current = indent = deepest_indent = elifs = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = token.type
            if kind in (tokenize.NEWLINE, tokenize.ENDMARKER):
                longest, current = max(longest, current), 0
            elif kind == tokenize.INDENT:
                indent += 1
                deepest_indent = max(deepest_indent, indent)
            elif kind == tokenize.DEDENT:
                indent -= 1
            elif kind not in _GAP_TOKENS:
                current += 1
                elifs += token.string == "elif"
    except (tokenize.TokenError, SyntaxError, ValueError):
        punctuation = len(re.sub(r"[\w\s]+", "", source))
        words = sum(1 for word in re.findall(r"[A-Za-z_]+", source) if word in _NESTING_WORDS)
        return punctuation + words
    return max(longest, current) + deepest_indent + elifs


def bracket_depth(source: str) -> int:
    """Deepest bracket nesting, counting brackets in strings too (an upper bound)."""
    brackets = _NOT_BRACKET.sub("", source)
    if len(brackets) <= PYTHON_MAX_BRACKET_DEPTH:
        return len(brackets)
    return max(itertools.accumulate(1 if bracket in "([{" else -1 for bracket in brackets))


def caused_by_recursion(error: BaseException) -> bool:
    """True if ``error`` is a RecursionError or was raised while handling one.

    libcst's position provider turns a RecursionError into a KeyError (its bookkeeping
    fails in a ``finally``); the original stays in the exception's context.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, RecursionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def call_with_stack(deep: bool, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, in a deep-stack thread when ``deep`` or when it hits recursion.

    Retrying on failure keeps the common path free of thread start-up; ``deep`` skips the
    first try for files already known to nest deeply (whose native parse is the risk).
    """
    if not deep:
        try:
            return function(*args)
        except Exception as exc:
            if not caused_by_recursion(exc):
                raise
    return run_deep(function, *args)


_limit_lock = threading.Lock()
_deep_callers = 0
_saved_limit = 0


def run_deep(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a new thread with a 512 MB stack and a raised recursion limit.

    The stack is reserved, not committed: only the pages a deep file touches are used.
    Raises :class:`DeepStackUnavailable` when no such thread can be started.
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, function(*args)))
        except BaseException as exc:  # handed back to the calling thread
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name="agentfuse-deep", daemon=True)
    _raise_recursion_limit()
    try:
        with _limit_lock:
            old_stack = threading.stack_size()
            try:
                threading.stack_size(DEEP_STACK_BYTES)
                worker.start()
            except (RuntimeError, ValueError, MemoryError) as exc:
                raise DeepStackUnavailable(f"cannot start a thread with a 512 MB stack: {exc}") from None
            finally:
                threading.stack_size(old_stack)
        worker.join()
    finally:
        _restore_recursion_limit()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _raise_recursion_limit() -> None:
    global _deep_callers, _saved_limit
    with _limit_lock:
        if _deep_callers == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, DEEP_RECURSION_LIMIT))
        _deep_callers += 1


def _restore_recursion_limit() -> None:
    global _deep_callers
    with _limit_lock:
        _deep_callers -= 1
        if _deep_callers == 0:
            sys.setrecursionlimit(_saved_limit)


def split_string_runs(source: str, chunk: int = STRING_RUN_CHUNK) -> str | None:
    """``source`` with runs of more than ``chunk`` adjacent strings split by ``+``; or None.

    libcst refuses a run of more than 3,000 adjacent literals (``"a" "b" ...``), which
    CPython accepts. A ``+`` replaces one space or tab between two literals, so every
    line and column stays where it was, and the rules still see one string value (they
    add up string operands). None when nothing needs splitting, or a run has no such space
    within ``chunk`` literals.
    """
    runs = [run for run in _string_runs(source) if len(run) > chunk]
    if not runs:
        return None
    text = list(source)
    for run in runs:
        start = 0
        while len(run) - start > chunk:
            for cut in range(start + chunk, start, -1):
                where = _gap_space(source, run[cut - 1][1], run[cut][0])
                if where is not None:
                    text[where] = "+"
                    start = cut
                    break
            else:
                return None
    return "".join(text)


def _gap_space(source: str, begin: int, end: int) -> int | None:
    """Offset of a space or tab between two literals, outside comments."""
    in_comment = False
    for offset in range(begin, end):
        char = source[offset]
        if char == "#":
            in_comment = True
        elif char == "\n":
            in_comment = False
        elif char in " \t" and not in_comment:
            return offset
    return None


def _string_runs(source: str) -> Iterator[list[tuple[int, int]]]:
    """Runs of adjacent string literals as (start, end) offsets, one pair per literal."""
    starts = [0, *itertools.accumulate(len(line) for line in io.StringIO(source))]

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    run: list[tuple[int, int]] = []
    fstring_depth = 0
    fstring_start = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = token.type
            if fstring_depth:
                if kind == _FSTRING_START:
                    fstring_depth += 1
                elif kind == _FSTRING_END:
                    fstring_depth -= 1
                    if not fstring_depth:
                        run.append((fstring_start, offset(token.end)))
            elif kind == _FSTRING_START:
                fstring_depth, fstring_start = 1, offset(token.start)
            elif kind in _STRING_TOKENS:
                run.append((offset(token.start), offset(token.end)))
            elif kind not in _GAP_TOKENS:
                if len(run) > 1:
                    yield run
                run = []
    except (tokenize.TokenError, SyntaxError, ValueError):
        return
    if len(run) > 1:
        yield run
