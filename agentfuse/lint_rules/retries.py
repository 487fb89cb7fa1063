"""Rules AF201-AF203: retry helpers that have no ceiling.

An unattended agent that retries a failing (and billed) call forever is the most common way
to burn money overnight. These rules find retry helpers configured without a limit
(tenacity, backoff, retrying, stamina, urllib3, google-api-core, the retry package, LLM
clients with an absurd ``max_retries``); hand-rolled ``while True`` loops are retry_loops.py.

Every rule here collects what it needs during the shared traversal and decides in
``leave_Module``, when the file's import table and its simple assignments are complete, so an
import or a ``STOP = ...`` written below its use still counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, TypeVar

import libcst as cst

from agentfuse.lint_rules._retry_common import BindingsRule, last_segment, walk
from agentfuse.lint_rules._triggers import BACKOFF_TRIGGERS, RETRY_HELPER_TRIGGERS, TENACITY_TRIGGERS
from agentfuse.lint_rules.base import FileContext, Fix, Rule, dotted_name

T = TypeVar("T")

DEFAULT_FIX_MAX_ATTEMPTS = 5
DEFAULT_MAX_CLIENT_RETRIES = 10

_TENACITY_RETRIERS = frozenset(
    {
        "tenacity.retry",
        "tenacity.Retrying",
        "tenacity.AsyncRetrying",
        "tenacity.TornadoRetrying",
        "tenacity.asyncio.AsyncRetrying",
        "tenacity._asyncio.AsyncRetrying",
        "tenacity.tornadoweb.TornadoRetrying",
    }
)
_TENACITY_NEVER = frozenset({"tenacity.stop_never", "tenacity.stop.stop_never"})
_TENACITY_STOP_ANY = frozenset({"tenacity.stop_any", "tenacity.stop.stop_any"})
_TENACITY_STOP_ALL = frozenset({"tenacity.stop_all", "tenacity.stop.stop_all"})
_TENACITY_STOP_AFTER_ATTEMPT = frozenset({"tenacity.stop_after_attempt", "tenacity.stop.stop_after_attempt"})

_BACKOFF_DECORATORS = frozenset(
    {
        "backoff.on_exception",
        "backoff.on_predicate",
        "backoff._decorator.on_exception",
        "backoff._decorator.on_predicate",
    }
)

_RETRYING_NAMES = frozenset({"retrying.retry", "retrying.Retrying"})
_RETRY_PACKAGE_DECORATORS = frozenset({"retry.retry", "retry.api.retry"})
_RETRY_PACKAGE_CALLS = frozenset({"retry.retry_call", "retry.api.retry_call"})
_STAMINA_NAMES = frozenset(
    {"stamina.retry", "stamina.retry_context", "stamina.RetryingCaller", "stamina.AsyncRetryingCaller"}
)
_URLLIB3_RETRY = frozenset(
    {
        "urllib3.Retry",
        "urllib3.util.Retry",
        "urllib3.util.retry.Retry",
        "requests.adapters.Retry",
        "requests.packages.urllib3.Retry",
        "requests.packages.urllib3.util.Retry",
        "requests.packages.urllib3.util.retry.Retry",
        "botocore.vendored.requests.packages.urllib3.util.retry.Retry",
    }
)
_GOOGLE_RETRY_CLASSES = frozenset({"Retry", "AsyncRetry", "StreamingRetry", "AsyncStreamingRetry"})
_LLM_CLIENTS = frozenset(
    {
        "openai.OpenAI",
        "openai.AsyncOpenAI",
        "openai.AzureOpenAI",
        "openai.AsyncAzureOpenAI",
        "openai.Client",
        "openai.AsyncClient",
        "anthropic.Anthropic",
        "anthropic.AsyncAnthropic",
        "anthropic.Client",
        "anthropic.AsyncClient",
        "anthropic.AnthropicBedrock",
        "anthropic.AsyncAnthropicBedrock",
        "anthropic.AnthropicVertex",
        "anthropic.AsyncAnthropicVertex",
        "langchain_openai.ChatOpenAI",
        "langchain_openai.AzureChatOpenAI",
        "langchain_anthropic.ChatAnthropic",
    }
)
_INFINITE_CONSTANTS = frozenset({"math.inf", "sys.maxsize", "numpy.inf"})
_CALLBACK_KEYWORDS = frozenset({"retry", "after", "before", "before_sleep", "retry_error_callback"})


def _compares_attempts(node: cst.CSTNode) -> bool:
    """True if ``node`` holds a comparison that reads ``attempt_number``."""
    for child, _ in walk(node):
        if isinstance(child, cst.Comparison):
            for part, _ in walk(child):
                if isinstance(part, cst.Name) and part.value == "attempt_number":
                    return True
                if isinstance(part, cst.SimpleString) and "attempt_number" in part.value:
                    return True
    return False


def positive_int_option(options: Mapping[str, Any], key: str, default: int) -> int:
    """``options[key]`` when it is a positive integer, else ``default``.

    The config loader reports a malformed value; a rule must still run, so it falls back.
    """
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return default
    return value


def _has_splat(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


def _argument(call: cst.Call, keyword: str, position: int | None = None) -> cst.Arg | None:
    """The argument bound to ``keyword`` (by name, or by ``position`` among positionals)."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg
    if position is not None:
        positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
        if position < len(positional):
            return positional[position]
    return None


def _keyword_arg(keyword: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(
        keyword=cst.Name(keyword),
        value=value,
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )


def with_keyword(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """``call`` with ``keyword=value`` set: the old value replaced, or the argument appended.

    Appending keeps the call's layout: on one line it adds ``, kw=value``; in a call laid out
    one argument per line it adds a line in the same style, trailing comma and comments kept.
    """
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            args[index] = arg.with_changes(value=value)
            return call.with_changes(args=args)
    new_arg = _keyword_arg(keyword, value)
    if not args:
        return call.with_changes(args=[new_arg])
    last = args[-1]
    comma = last.comma
    if isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):
        closing = comma.whitespace_after
        item_indent = _item_indent(call, closing)
        moved_down = comma.with_changes(whitespace_after=closing.with_changes(last_line=item_indent))
        args[-1] = last.with_changes(comma=moved_down)
        new_arg = new_arg.with_changes(
            comma=cst.Comma(
                whitespace_after=cst.ParenthesizedWhitespace(
                    first_line=cst.TrailingWhitespace(), indent=closing.indent, last_line=closing.last_line
                )
            )
        )
    elif isinstance(comma, cst.Comma):
        new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        args[-1] = last.with_changes(whitespace_after_arg=cst.SimpleWhitespace(""))
    else:
        new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        args[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
            whitespace_after_arg=cst.SimpleWhitespace(""),
        )
    args.append(new_arg)
    return call.with_changes(args=args)


def _item_indent(call: cst.Call, closing: cst.ParenthesizedWhitespace) -> cst.SimpleWhitespace:
    """The indentation of the arguments of a one-per-line call (after ``(``, or between them)."""
    opening = call.whitespace_before_args
    if isinstance(opening, cst.ParenthesizedWhitespace):
        return opening.last_line
    if len(call.args) > 1:
        between = call.args[-2].comma
        if isinstance(between, cst.Comma) and isinstance(between.whitespace_after, cst.ParenthesizedWhitespace):
            return between.whitespace_after.last_line
    return cst.SimpleWhitespace(closing.last_line.value + "    ")


class _RetryRule(BindingsRule):
    """A rule about retry helper calls: collects candidates, decides in ``leave_Module``.

    ``candidates`` holds the last name segments a rule cares about, so collecting costs a set
    lookup or two per call; resolution through the import table waits for ``leave_Module``.
    """

    candidates: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.calls: list[cst.Call] = []
        self.bare_decorators: list[cst.Decorator] = []
        self._none_memo: dict[str, bool] = {}
        self._number_memo: dict[str, float | None] = {}

    def visit_Call(self, node: cst.Call) -> None:
        if self._may_matter(node.func):
            self.calls.append(node)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        if self._may_matter(node.decorator):
            self.bare_decorators.append(node)

    def _may_matter(self, func: cst.BaseExpression) -> bool:
        """A cheap filter: a candidate name, or a name imported under an alias (seen so far)."""
        if last_segment(func) in self.candidates:
            return True
        return isinstance(func, cst.Name) and func.value in self.context.imports.aliases

    def leave_Module(self, original_node: cst.Module) -> None:
        for decorator in self.bare_decorators:
            self.check_bare_decorator(decorator)
        for call in self.calls:
            self.check_call(call)

    def check_call(self, call: cst.Call) -> None:
        """Report ``call`` if it is a retry helper with no ceiling."""

    def check_bare_decorator(self, decorator: cst.Decorator) -> None:
        """Report a decorator used without a call (``@retry``) if that means no ceiling."""

    def lookup(self, node: cst.BaseExpression, known: Collection[str]) -> str | None:
        """The qualified name of ``node`` if it is one of ``known`` (star imports included)."""
        imports = self.context.imports
        resolved = imports.resolve(node)
        if resolved in known:
            return resolved
        name = dotted_name(node)
        if resolved is None and name is not None:
            for module in imports.star_modules:
                if f"{module}.{name}" in known:
                    return f"{module}.{name}"
        return None

    def local_name(self, expr: cst.BaseExpression) -> str | None:
        """The dotted name in ``expr`` if this module assigns it (and it is not an import)."""
        name = dotted_name(expr)
        if name is None or name not in self.bindings or self.context.imports.resolve(expr) is not None:
            return None
        return name

    def name_fact(
        self,
        expr: cst.BaseExpression,
        memo: dict[str, T],
        compute: Callable[[list[cst.BaseExpression]], T],
        default: T,
    ) -> T:
        """``compute(values)`` over what the local name in ``expr`` is bound to, memoised.

        ``default`` answers for names not assigned here and for a name met again while its
        own answer is being computed (``a = b``, ``b = a``), so every name is examined once.
        """
        name = self.local_name(expr)
        if name is None:
            return default
        if name not in memo:
            memo[name] = default
            memo[name] = compute(self.bindings[name])
        return memo[name]

    def is_none(self, expr: cst.BaseExpression) -> bool:
        """True for ``None`` or a name whose every visible binding is ``None``."""
        if isinstance(expr, cst.Name) and expr.value == "None":
            return True
        return self.name_fact(expr, self._none_memo, lambda values: all(map(self.is_none, values)), False)

    def number(self, expr: cst.BaseExpression) -> float | None:
        """The value of a numeric literal (``-1``, ``10**6``, ``float("inf")``, ``math.inf``)."""
        if isinstance(expr, cst.Integer | cst.Float):
            try:
                return float(expr.evaluated_value)
            except OverflowError:
                return math.inf
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            inner = self.number(expr.expression)
            return None if inner is None else -inner
        if isinstance(expr, cst.BinaryOperation):
            return self._binary_number(expr)
        if isinstance(expr, cst.Call) and dotted_name(expr.func) == "float" and len(expr.args) == 1:
            literal = expr.args[0].value
            text = literal.evaluated_value if isinstance(literal, cst.SimpleString) else None
            if isinstance(text, str) and text.strip().lower().lstrip("+") in {"inf", "infinity"}:
                return math.inf
            return None
        if self.context.imports.resolve(expr) in _INFINITE_CONSTANTS:
            return math.inf
        return self.name_fact(
            expr, self._number_memo, lambda values: self.number(values[0]) if len(values) == 1 else None, None
        )

    def _binary_number(self, expr: cst.BinaryOperation) -> float | None:
        left = self.number(expr.left)
        right = self.number(expr.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(expr.operator, cst.Power):
                result = math.inf if right * math.log10(max(abs(left), 1.0)) > 300 else left**right
            elif isinstance(expr.operator, cst.Multiply):
                result = left * right
            elif isinstance(expr.operator, cst.Add):
                result = left + right
            elif isinstance(expr.operator, cst.Subtract):
                result = left - right
            else:
                return None
        except (ArithmeticError, ValueError):
            return None
        if not isinstance(result, float | int) or math.isnan(result):
            return None
        return float(result)


class UnboundedTenacityRetry(_RetryRule):
    """tenacity retries forever unless it is given a ``stop``.

    tenacity's default stop is ``stop_never``: ``@retry``, ``@retry(wait=...)``,
    ``Retrying(...)`` and ``AsyncRetrying(...)`` without ``stop=`` retry a failing (and billed)
    call until someone notices. ``stop=stop_never`` (directly, through a variable bound to it in
    this module, or combined with ``&``) is as bad. A ``stop`` held in a variable or built by a
    call counts as a ceiling; ``**kwargs`` splats are not flagged, since the stop may be inside.
    ``fn.retry_with(stop=stop_never)`` is flagged; ``retry_with`` without ``stop`` inherits the
    original's stop and is not. A ``retry=``/``after=``/``before_sleep=`` callback of this
    module (or a lambda) that compares ``attempt_number`` counts as a ceiling. Known misses: a
    stop passed in from another module or a function parameter default of ``stop_never``. The
    fix adds ``stop=stop_after_attempt(N)`` (N from ``fix-max-attempts``, default 5) or replaces
    the ``stop_never``.
    """

    code = "AF201"
    message = (
        "tenacity retry has no stop (or stop_never), so it retries forever; "
        "add stop=stop_after_attempt(5) or stop_after_delay(...)"
    )
    triggers = TENACITY_TRIGGERS
    candidates = frozenset({"retry", "Retrying", "AsyncRetrying", "TornadoRetrying", "retry_with"})
    VALID = (
        "from tenacity import retry, stop_after_attempt\n"
        "@retry(stop=stop_after_attempt(3))\n"
        "def fetch(): ...\n",
        "from tenacity import Retrying, stop_after_attempt, stop_after_delay\n"
        "STOP = stop_after_attempt(5) | stop_after_delay(30)\n"
        "for attempt in Retrying(stop=STOP):\n"
        "    with attempt:\n"
        "        call()\n",
        "import tenacity\n"
        "def build(**options):\n"
        "    return tenacity.Retrying(**options)\n",
        "from retrying import retry\n"
        "@retry(stop_max_attempt_number=3)\n"
        "def fetch(): ...\n",
        # an LLM eval harness: the retry= callback gives up after five attempts itself
        "from tenacity import retry, wait_random_exponential\n"
        "def _should_retry(state):\n"
        "    if state.attempt_number >= 5:\n"
        "        return False\n"
        "    return isinstance(state.outcome.exception(), TimeoutError)\n"
        "@retry(retry=_should_retry, wait=wait_random_exponential(max=30))\n"
        "def grade(answer): ...\n",
    )
    INVALID = (
        "from tenacity import retry\n"
        "@retry  # expect: AF201\n"
        "def fetch(): ...\n",
        # an LLM platform's API client: the after= callback only logs the attempt number
        "from tenacity import retry, retry_if_exception_type, wait_exponential_jitter\n"
        "def log_retry_error(state):\n"
        "    print(f'retrying: {state.attempt_number} time(s)')\n"
        "class Api:\n"
        "    @retry(  # expect: AF201\n"
        "        wait=wait_exponential_jitter(initial=1, max=10),\n"
        "        retry=retry_if_exception_type(ConnectionError),\n"
        "        after=log_retry_error,\n"
        "    )\n"
        "    def _http_request(self, method, url): ...\n",
        "import tenacity as t\n"
        "@t.retry(wait=t.wait_fixed(2))  # expect: AF201\n"
        "async def fetch(): ...\n",
        "from tenacity import AsyncRetrying, stop_never\n"
        "async def run():\n"
        "    async for attempt in AsyncRetrying(stop=stop_never):  # expect: AF201\n"
        "        with attempt:\n"
        "            await call()\n",
        "from tenacity import retry, stop_never\n"
        "FOREVER = stop_never\n"
        "fetch = retry(reraise=True, stop=FOREVER)(download)  # expect: AF201\n",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._never_memo: dict[str, bool] = {}
        self._functions: dict[str, list[cst.FunctionDef]] = {}

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions.setdefault(node.name.value, []).append(node)

    def check_bare_decorator(self, decorator: cst.Decorator) -> None:
        if self.lookup(decorator.decorator, {"tenacity.retry"}) is None:
            return
        call = cst.Call(func=decorator.decorator, args=[self._stop_arg(decorator.decorator)])
        replacement = decorator.with_changes(decorator=call)
        self.report(decorator, fix=Fix(decorator, replacement, self._imports(decorator.decorator)))

    def check_call(self, call: cst.Call) -> None:
        if _has_splat(call):
            return
        name = self.lookup(call.func, _TENACITY_RETRIERS)
        if name is None:
            self._check_retry_with(call)
            return
        positional = [arg for arg in call.args if arg.keyword is None]
        if name == "tenacity.retry" and len(positional) == 1 and len(call.args) == 1:
            wrapped = call.with_changes(func=cst.Call(func=call.func, args=[self._stop_arg(call.func)]))
            self.report(call, fix=Fix(call, wrapped, self._imports(call.func)))
            return
        stop = _argument(call, "stop", 1)
        if stop is not None and not self._is_never(stop.value):
            return
        if stop is None and self._callback_counts_attempts(call):
            return
        self.report(call, fix=self._stop_fix(call, stop))

    def _callback_counts_attempts(self, call: cst.Call) -> bool:
        """A ``retry=``/``after=``/``before_sleep=`` callback of this module (or a lambda) that
        compares ``attempt_number``: it ends the retries itself after N attempts."""
        pending = [
            arg.value for arg in call.args if arg.keyword is not None and arg.keyword.value in _CALLBACK_KEYWORDS
        ]
        seen: set[int] = set()
        while pending:
            expr = pending.pop()
            if id(expr) in seen:
                continue
            seen.add(id(expr))
            if isinstance(expr, cst.Lambda) and _compares_attempts(expr.body):
                return True
            if isinstance(expr, cst.Name):
                if any(_compares_attempts(f.body) for f in self._functions.get(expr.value, ())):
                    return True
            elif isinstance(expr, cst.Call):
                pending.extend(arg.value for arg in expr.args)
            elif isinstance(expr, cst.BinaryOperation):
                pending.extend((expr.left, expr.right))
        return False

    def _check_retry_with(self, call: cst.Call) -> None:
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value != "retry_with":
            return
        if not self.context.imports.imports_module("tenacity"):
            return
        stop = _argument(call, "stop")
        if stop is not None and self._is_never(stop.value):
            self.report(call, fix=self._stop_fix(call, stop))

    def _stop_fix(self, call: cst.Call, stop: cst.Arg | None) -> Fix:
        value = self._stop_arg(call.func).value
        if stop is not None and stop.keyword is None:
            args = [arg.with_changes(value=value) if arg is stop else arg for arg in call.args]
            replacement = call.with_changes(args=args)
        else:
            replacement = with_keyword(call, "stop", value)
        return Fix(call, replacement, self._imports(call.func))

    def _is_never(self, expr: cst.BaseExpression) -> bool:
        if self.lookup(expr, _TENACITY_NEVER) is not None or self.is_none(expr):
            return True
        if isinstance(expr, cst.BinaryOperation):
            left, right = self._is_never(expr.left), self._is_never(expr.right)
            if isinstance(expr.operator, cst.BitOr):
                return left and right
            if isinstance(expr.operator, cst.BitAnd):
                return left or right
            return False
        if isinstance(expr, cst.Call) and expr.args and not _has_splat(expr):
            parts = [self._is_never(arg.value) for arg in expr.args]
            if self.lookup(expr.func, _TENACITY_STOP_ANY):
                return all(parts)
            if self.lookup(expr.func, _TENACITY_STOP_ALL):
                return any(parts)
            return False
        return self.name_fact(expr, self._never_memo, lambda values: all(map(self._is_never, values)), False)

    def _max_attempts(self) -> int:
        return positive_int_option(self.context.options, "fix-max-attempts", DEFAULT_FIX_MAX_ATTEMPTS)

    def _stop_function(self, callee: cst.BaseExpression) -> cst.BaseExpression:
        """How this module can name ``stop_after_attempt``: existing alias, module alias, or bare."""
        aliases = self.context.imports.aliases
        for local, target in aliases.items():
            if target in _TENACITY_STOP_AFTER_ATTEMPT:
                return cst.Name(local)
        root = (dotted_name(callee) or "").partition(".")[0]
        if "." in (dotted_name(callee) or "") and aliases.get(root) == "tenacity":
            return cst.Attribute(value=cst.Name(root), attr=cst.Name("stop_after_attempt"))
        module_aliases = [local for local, target in aliases.items() if target == "tenacity"]
        from_imports = [target for target in aliases.values() if target.startswith("tenacity.")]
        if module_aliases and not from_imports:
            return cst.Attribute(value=cst.Name(module_aliases[0]), attr=cst.Name("stop_after_attempt"))
        return cst.Name("stop_after_attempt")

    def _stop_arg(self, callee: cst.BaseExpression) -> cst.Arg:
        function = self._stop_function(callee)
        value = cst.Call(func=function, args=[cst.Arg(cst.Integer(str(self._max_attempts())))])
        return _keyword_arg("stop", value)

    def _imports(self, callee: cst.BaseExpression) -> tuple[tuple[str, str | None], ...]:
        if isinstance(self._stop_function(callee), cst.Name) and not any(
            target in _TENACITY_STOP_AFTER_ATTEMPT for target in self.context.imports.aliases.values()
        ):
            return (("tenacity", "stop_after_attempt"),)
        return ()


class UnboundedBackoff(_RetryRule):
    """backoff retries forever unless it is given ``max_tries`` or ``max_time``.

    ``backoff.on_exception`` and ``backoff.on_predicate`` default to no limit at all. A limit
    given as ``None`` is no limit; ``max_tries`` of zero or less is none either (backoff stops
    when the try count *equals* it, which never happens). A callable or a variable counts as a
    ceiling (its value is read at run time). ``**kwargs`` splats are not flagged. The fix adds
    ``max_tries=N`` (N from ``fix-max-attempts``, default 5).
    """

    code = "AF202"
    message = (
        "backoff retry has neither max_tries nor max_time, so it retries forever; "
        "add max_tries=5 (or max_time=...)"
    )
    triggers = BACKOFF_TRIGGERS
    candidates = frozenset({"on_exception", "on_predicate"})
    VALID = (
        "import backoff\n"
        "@backoff.on_exception(backoff.expo, TimeoutError, max_tries=5)\n"
        "def fetch(): ...\n",
        "import backoff\n"
        "@backoff.on_predicate(backoff.constant, max_time=lambda: settings.deadline)\n"
        "def poll(): ...\n",
        "import backoff\n"
        "def build(**limits):\n"
        "    return backoff.on_exception(backoff.expo, OSError, **limits)\n",
    )
    INVALID = (
        "import backoff\n"
        "@backoff.on_exception(backoff.expo, TimeoutError)  # expect: AF202\n"
        "def fetch(): ...\n",
        "from backoff import on_predicate as poll_until, fibo\n"
        "@poll_until(fibo, max_tries=None)  # expect: AF202\n"
        "async def poll(): ...\n",
    )

    def check_call(self, call: cst.Call) -> None:
        if _has_splat(call) or self.lookup(call.func, _BACKOFF_DECORATORS) is None:
            return
        max_tries = _argument(call, "max_tries")
        max_time = _argument(call, "max_time")
        if max_time is not None and not self.is_none(max_time.value):
            return
        if max_tries is not None and not self.is_none(max_tries.value):
            tries = self.number(max_tries.value)
            if tries is None or tries > 0:
                return
        attempts = positive_int_option(self.context.options, "fix-max-attempts", DEFAULT_FIX_MAX_ATTEMPTS)
        replacement = with_keyword(call, "max_tries", cst.Integer(str(attempts)))
        self.report(call, fix=Fix(call, replacement))


class UnboundedRetryHelper(_RetryRule):
    """Other retry helpers configured with no ceiling.

    - retrying: ``@retry`` bare, or without ``stop_max_attempt_number``, ``stop_max_delay``,
      ``stop_func`` or a ``stop=`` other than ``"never_stop"`` (its default never stops).
    - the ``retry`` package: ``@retry(...)``/``retry_call(...)`` without ``tries`` (default
      ``-1``: forever) or with a negative ``tries``.
    - stamina: ``retry``, ``retry_context``, ``RetryingCaller`` with both ``attempts=None`` and
      ``timeout=None`` (its defaults, 10 attempts and 45 s, are ceilings).
    - urllib3 ``Retry(total=None)`` unless both ``connect`` and ``read`` are bounded: with no
      total, only the per-kind counts stop it, and a missing kind retries forever. This covers
      requests' ``HTTPAdapter(max_retries=Retry(...))``; an integer ``max_retries`` is a ceiling.
    - google-api-core ``Retry``/``AsyncRetry`` with ``timeout=None`` and no ``deadline``.
    - an OpenAI, Anthropic or LangChain chat client (or ``.with_options``) built with a
      ``max_retries`` above ``max-client-retries`` (default 10), ``float("inf")`` or
      ``sys.maxsize``: the SDK retries with backoff, so a huge count is a retry with no ceiling.

    Helpers with a built-in ceiling (aiohttp-retry, httpx transports, LangChain ``with_retry``)
    are not flagged. Known misses: settings passed through ``**kwargs`` or from other modules.
    A project module that is itself named ``retry`` (``from retry import retry``) is taken for
    the PyPI package.
    """

    code = "AF203"
    message = "retry helper has no ceiling, so it can retry forever; give it a maximum number of attempts or a deadline"
    triggers = RETRY_HELPER_TRIGGERS
    candidates = frozenset(
        {"retry", "Retrying", "retry_call", "retry_context", "RetryingCaller", "AsyncRetryingCaller", "with_options"}
        | _GOOGLE_RETRY_CLASSES
        | {name.rpartition(".")[2] for name in _LLM_CLIENTS}
    )
    VALID = (
        "from retrying import retry\n"
        "@retry(stop_max_attempt_number=3, wait_fixed=2000)\n"
        "def fetch(): ...\n",
        "from urllib3.util.retry import Retry\n"
        "session_retries = Retry(total=5, backoff_factor=0.5)\n",
        "import stamina\n"
        "@stamina.retry(on=TimeoutError, attempts=None)\n"
        "def fetch(): ...\n",
        "from openai import OpenAI\n"
        "client = OpenAI(max_retries=5)\n",
    )
    INVALID = (
        "from retrying import retry\n"
        "@retry(wait_exponential_multiplier=1000)  # expect: AF203\n"
        "def fetch(): ...\n",
        "import stamina\n"
        "@stamina.retry(on=TimeoutError, attempts=None, timeout=None)  # expect: AF203\n"
        "async def fetch(): ...\n",
        "from requests.adapters import HTTPAdapter\n"
        "from urllib3 import Retry\n"
        "adapter = HTTPAdapter(max_retries=Retry(total=None, connect=5))  # expect: AF203\n",
        "from anthropic import Anthropic\n"
        "client = Anthropic(max_retries=1000)  # expect: AF203\n",
    )

    def check_bare_decorator(self, decorator: cst.Decorator) -> None:
        if self.lookup(decorator.decorator, {"retrying.retry"}) is not None:
            self.report(decorator, self._retrying_message)

    _retrying_message = (
        "retrying's retry has no stop, so it retries forever; "
        "add stop_max_attempt_number=5 or stop_max_delay=..."
    )

    def check_call(self, call: cst.Call) -> None:
        if _has_splat(call):
            return
        message: str | None = None
        if self.lookup(call.func, _RETRYING_NAMES):
            message = self._check_retrying(call)
        elif self.lookup(call.func, _RETRY_PACKAGE_DECORATORS):
            message = self._check_retry_package(call, 1)
        elif self.lookup(call.func, _RETRY_PACKAGE_CALLS):
            message = self._check_retry_package(call, 4)
        elif self.lookup(call.func, _STAMINA_NAMES):
            message = self._check_stamina(call)
        elif self.lookup(call.func, _URLLIB3_RETRY):
            message = self._check_urllib3(call)
        elif self._is_google_retry(call.func):
            message = self._check_google(call)
        elif self.lookup(call.func, _LLM_CLIENTS) or self._is_client_with_options(call.func):
            message = self._check_client(call)
        if message is not None:
            self.report(call, message)

    def _bounded(self, call: cst.Call, keyword: str, position: int | None = None) -> bool:
        arg = _argument(call, keyword, position)
        return arg is not None and not self.is_none(arg.value)

    def _check_retrying(self, call: cst.Call) -> str | None:
        positional = [arg for arg in call.args if arg.keyword is None]
        if len(call.args) == 1 and positional and not isinstance(positional[0].value, cst.SimpleString):
            return self._retrying_message
        stop = _argument(call, "stop", 0)
        if stop is not None and not self.is_none(stop.value):
            value = stop.value
            if not (isinstance(value, cst.SimpleString) and value.evaluated_value == "never_stop"):
                return None
        for keyword, position in (("stop_max_attempt_number", 2), ("stop_max_delay", 3), ("stop_func", None)):
            if self._bounded(call, keyword, position):
                return None
        return self._retrying_message

    def _check_retry_package(self, call: cst.Call, position: int) -> str | None:
        tries = _argument(call, "tries", position)
        if tries is not None:
            count = self.number(tries.value)
            if count is None or count >= 0:
                return None
        return "retry's tries defaults to -1 (forever); pass tries=5 (or another limit)"

    def _check_stamina(self, call: cst.Call) -> str | None:
        attempts, timeout = _argument(call, "attempts"), _argument(call, "timeout")
        if attempts is None or timeout is None:
            return None
        if self.is_none(attempts.value) and self.is_none(timeout.value):
            return "stamina retry with attempts=None and timeout=None retries forever; set attempts or timeout"
        return None

    def _check_urllib3(self, call: cst.Call) -> str | None:
        total = _argument(call, "total", 0)
        if total is None or not self.is_none(total.value):
            return None
        if self._bounded(call, "connect", 1) and self._bounded(call, "read", 2):
            return None
        return (
            "urllib3 Retry(total=None) without connect and read limits retries forever; "
            "set total=5 (or bound connect and read)"
        )

    def _is_google_retry(self, func: cst.BaseExpression) -> bool:
        resolved = self.context.imports.resolve(func) or ""
        module, _, name = resolved.rpartition(".")
        return module.startswith("google.api_core.retry") and name in _GOOGLE_RETRY_CLASSES

    def _check_google(self, call: cst.Call) -> str | None:
        timeout = _argument(call, "timeout", 4)
        if timeout is None or not self.is_none(timeout.value) or self._bounded(call, "deadline"):
            return None
        return "google.api_core Retry(timeout=None) retries forever; set timeout=120 (seconds) or another limit"

    def _is_client_with_options(self, func: cst.BaseExpression) -> bool:
        imports = self.context.imports
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value == "with_options"
            and (imports.imports_module("openai") or imports.imports_module("anthropic"))
        )

    def _check_client(self, call: cst.Call) -> str | None:
        retries = _argument(call, "max_retries")
        if retries is None:
            return None
        count = self.number(retries.value)
        limit = positive_int_option(self.context.options, "max-client-retries", DEFAULT_MAX_CLIENT_RETRIES)
        if count is None or count <= limit:
            return None
        return (
            f"LLM client max_retries above {limit} is a retry with no real ceiling, every attempt billed; "
            "use a small max_retries (2-5) and let the guard's breaker handle outages"
        )


RULES: tuple[type[Rule], ...] = (
    UnboundedTenacityRetry,
    UnboundedBackoff,
    UnboundedRetryHelper,
)
