"""Rule AF204: a hand-rolled ``while True`` retry loop with no counter, deadline or re-raise."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import libcst as cst

from agentfuse.lint_rules._retry_common import (
    ARITHMETIC_CALLS,
    CANCELLATION,
    EXIT_BUILTINS,
    EXIT_FUNCTIONS,
    FAILURE_WORDS,
    LLM_MODULES,
    LLM_VERBS,
    PROMPT_MODULES,
    TIME_FUNCTIONS,
    BindingsRule,
    chained_callees,
    last_segment,
    walk,
)
from agentfuse.lint_rules._triggers import RETRY_LOOP_TRIGGERS
from agentfuse.lint_rules.base import FileContext, Rule, dotted_name

DEADLINE_CONTEXTS = frozenset(
    {"timeout", "timeout_at", "fail_after", "fail_at", "move_on_after", "move_on_at", "Timeout", "time_limit"}
)
"""Context managers that cancel their block at a deadline (asyncio, anyio, trio, async_timeout)."""
ALARM_FUNCTIONS = frozenset({"alarm", "setitimer"})
WAIT_METHODS = frozenset({"result", "get", "wait", "join", "acquire", "recv", "poll", "wait_for", "exception"})


class UnboundedRetryLoop(BindingsRule):
    """A hand-rolled ``while True`` retry loop that can spin forever.

    Flags ``while True``/``while 1`` loops that try something, leave the loop on success (an
    unconditional ``break``/``return`` in the ``try`` or its ``else``, a ``return <value>``
    in it, or an unconditional exit right after it) and, on failure, catch the exception and
    loop again (``continue`` or falling through) on some path through that handler with no
    ``raise``, ``return``, ``break`` or ``sys.exit`` (an ``if`` that only inspects the caught
    exception picks which failures give up; the others still loop), and no counter or
    deadline check in the loop outside its handlers or on that path: an ``if`` that tests a
    name incremented in the loop, a name assigned from a clock, or a clock call, and leaves.

    Not retry loops, so not flagged (each seen as a false positive on real agent code):
    workers and pollers that never leave on success or leave only on a conditional ``break``
    (a stop signal); loops that fetch a new input before the ``try`` (``row =
    cursor.fetchone()``, an earlier ``try`` stage, a ``with`` block), where skipping a bad
    input is the point; loops that ask a person (``input()``, click/typer/questionary
    prompts); handlers that only catch signals, not failures (``CancelledError``,
    ``KeyboardInterrupt``, a control-flow exception such as ``SwitchMode``: a caught name with
    none of Error, Exception, Timeout, Exceeded, Exhausted, Unavailable, Limit... in it).

    The message is stronger when the loop calls an LLM: a call resolved into a known LLM SDK
    module (``litellm.completion``, ``openai.chat.completions.create``), or ending in a request
    verb (``.create``, ``.completion``, ``.generate_content``...) on a receiver assigned from one
    of those SDKs in this module (``client = OpenAI()``, ``self.client = Anthropic()``).
    Known misses: a handler that calls a helper which raises after N failures is flagged; a
    counter incremented by a helper is not seen; a retry that rebuilds its input before the
    ``try`` (``messages = build()``) is read as iterating over inputs and not flagged, unless
    that call is a model request (``reply = model.create(...)``); a retry whose success exit
    is conditional (a paginated read: ``if not page["has_more"]: break``) is read as a worker.
    """

    code = "AF204"
    message = (
        "while True loop catches a failure and tries again with no counter, deadline or re-raise; "
        "bound it (for attempt in range(5), a deadline check) and re-raise on the last failure"
    )
    llm_message = (
        "while True loop retries an LLM call forever on failure, and every attempt is billed; "
        "bound it (for attempt in range(5), a deadline check) and re-raise on the last failure"
    )
    triggers = RETRY_LOOP_TRIGGERS
    VALID = (
        "attempts = 0\n"
        "while True:\n"
        "    try:\n"
        "        result = fetch()\n"
        "        break\n"
        "    except TimeoutError:\n"
        "        attempts += 1\n"
        "        if attempts >= 5:\n"
        "            raise\n",
        "while True:\n"
        "    try:\n"
        "        job = queue.get()\n"
        "        handle(job)\n"
        "    except Exception:\n"
        "        log.exception('job failed')\n",
        # an async agent runtime: the retry loop runs under asyncio.timeout, which ends it
        "import asyncio\n"
        "async def connect(client):\n"
        "    async with asyncio.timeout(30):\n"
        "        while True:\n"
        "            try:\n"
        "                return await client.connect()\n"
        "            except ConnectionError:\n"
        "                await asyncio.sleep(1)\n",
        # a document pipeline bridging threads: it polls a future with a timeout (waiting)
        "import concurrent.futures\n"
        "def wait_for_llm(future, cancelled):\n"
        "    while True:\n"
        "        if cancelled():\n"
        "            future.cancel()\n"
        "        try:\n"
        "            return future.result(timeout=0.5)\n"
        "        except concurrent.futures.TimeoutError:\n"
        "            continue\n",
        # a workflow exporter: the handler picks the next free file name, it does not retry
        "def export(path, data):\n"
        "    suffix = 2\n"
        "    while True:\n"
        "        try:\n"
        "            with path.open('xb') as out:\n"
        "                out.write(data)\n"
        "            break\n"
        "        except FileExistsError:\n"
        "            path = path.with_name(f'{path.stem}-{suffix}{path.suffix}')\n"
        "            suffix += 1\n",
        # a tool server: the reconnect loop is awaited under asyncio.wait_for
        "import asyncio\n"
        "async def _reconnect(session):\n"
        "    while True:\n"
        "        try:\n"
        "            return await session.open()\n"
        "        except OSError:\n"
        "            await asyncio.sleep(0.5)\n"
        "async def start(session):\n"
        "    return await asyncio.wait_for(_reconnect(session), timeout=10)\n",
    )
    INVALID = (
        "import time\n"
        "while True:  # expect: AF204\n"
        "    try:\n"
        "        result = fetch()\n"
        "        break\n"
        "    except TimeoutError:\n"
        "        time.sleep(5)\n",
        "from openai import OpenAI\n"
        "client = OpenAI()\n"
        "def ask(prompt):\n"
        "    while 1:  # expect: AF204\n"
        "        try:\n"
        "            return client.chat.completions.create(model='gpt-4o', messages=prompt)\n"
        "        except Exception:\n"
        "            continue\n",
        # a research agent: the only exit is a return under an if, after the try
        "import time\n"
        "import openai\n"
        "def summarise(client, messages):\n"
        "    while True:  # expect: AF204\n"
        "        try:\n"
        "            response = client.chat.completions.create(model='gpt-4o', messages=messages)\n"
        "        except openai.RateLimitError:\n"
        "            time.sleep(10)\n"
        "            continue\n"
        "        if response.choices:\n"
        "            return response.choices[0].message.content\n",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.loops: list[cst.While] = []
        self._functions: list[str] = []
        self._deadline_depth = 0
        self._with_deadlines: list[bool] = []
        self._under_deadline: set[int] = set()
        self._loop_function: dict[int, str] = {}
        self._deadline_functions: set[str] = set()
        """Functions awaited through ``wait_for(f(...), timeout)`` or arming ``signal.alarm``."""

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions.append(node.name.value)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._functions.pop()

    def visit_With(self, node: cst.With) -> None:
        deadline = any(
            isinstance(item.item, cst.Call) and last_segment(item.item.func) in DEADLINE_CONTEXTS for item in node.items
        )
        self._with_deadlines.append(deadline)
        self._deadline_depth += deadline

    def leave_With(self, original_node: cst.With) -> None:
        self._deadline_depth -= self._with_deadlines.pop()

    def visit_Call(self, node: cst.Call) -> None:
        name = last_segment(node.func)
        if name == "wait_for" and node.args and isinstance(node.args[0].value, cst.Call):
            awaited = last_segment(node.args[0].value.func)
            if awaited is not None:
                self._deadline_functions.add(awaited)
        elif name in ALARM_FUNCTIONS and self._functions:
            resolved = self.context.imports.resolve(node.func) or ""
            if resolved.startswith("signal."):
                self._deadline_functions.add(self._functions[-1])

    def visit_While(self, node: cst.While) -> None:
        test = node.test
        if (isinstance(test, cst.Name) and test.value == "True") or (
            isinstance(test, cst.Integer) and test.value == "1"
        ):
            self.loops.append(node)
            if self._deadline_depth:
                self._under_deadline.add(id(node))
            if self._functions:
                self._loop_function[id(node)] = self._functions[-1]

    def leave_Module(self, original_node: cst.Module) -> None:
        for loop in self.loops:
            if self._has_outer_deadline(loop):
                continue
            if self._retries_forever(loop):
                self.report(loop, self.llm_message if self._calls_llm(loop) else self.message)

    def _has_outer_deadline(self, loop: cst.While) -> bool:
        """Inside ``async with asyncio.timeout(...)`` (anyio ``fail_after``...), or in a function
        run under ``asyncio.wait_for(...)`` or ``signal.alarm``: the deadline ends the loop."""
        function = self._loop_function.get(id(loop))
        return id(loop) in self._under_deadline or (function is not None and function in self._deadline_functions)

    def _retries_forever(self, loop: cst.While) -> bool:
        if not isinstance(loop.body, cst.IndentedBlock) or self._is_interactive(loop):
            return False
        bounds: dict[str, bool] = {name: True for name in _counters(loop)}
        endless = any(
            self._retries_on_failure(node, exits_after, bounds) for node, exits_after in self._first_tries(loop.body)
        )
        return endless and not self._has_guard(loop, bounds)

    def _first_tries(self, block: cst.BaseSuite) -> Iterator[tuple[cst.Try | cst.TryStar, bool]]:
        """The ``try`` statements reached through scaffolding only, each with "an exit follows".

        Looks into ``if``/``with`` blocks, not into inner loops or ``try`` bodies.
        """
        if not isinstance(block, cst.IndentedBlock):
            return
        statements = list(block.body)
        for index, statement in enumerate(statements):
            if isinstance(statement, (cst.Try, cst.TryStar)):
                later = statements[index + 1:]
                exits = any(self._is_unconditional_exit(after) or _returns_a_value_if(after) for after in later)
                yield statement, exits
            elif isinstance(statement, (cst.With, cst.If)):
                yield from self._first_tries(statement.body)
                orelse = statement.orelse if isinstance(statement, cst.If) else None
                while isinstance(orelse, cst.If):
                    yield from self._first_tries(orelse.body)
                    orelse = orelse.orelse
                if isinstance(orelse, cst.Else):
                    yield from self._first_tries(orelse.body)
            if not self._is_scaffolding(statement):
                return

    def _retries_on_failure(self, node: cst.Try | cst.TryStar, exits_after: bool, bounds: dict[str, bool]) -> bool:
        """True if the try leaves the loop on success and some handler loops again."""
        if not (exits_after or self._leaves_on_success(node.body) or self._leaves_on_success(node.orelse)):
            return False
        if _waits(node.body):
            return False
        reads = _reads(node.body)
        for handler in node.handlers:
            if not _catches_a_failure(handler):
                continue
            failure = handler.name.name.value if handler.name and isinstance(handler.name.name, cst.Name) else None
            if not self._falls_through(_statements(handler.body), _Path(failure, bounds, reads)):
                continue
            if exits_after and not _continues(handler.body):
                continue
            return True
        return False

    def _leaves_on_success(self, block: cst.CSTNode | None) -> bool:
        """An unconditional ``break``/``return`` in ``block``, or a ``return <value>`` anywhere in it.

        A ``raise`` in a ``try`` body is caught by its own handlers, and a conditional ``break``
        is usually a stop signal of a worker loop, so neither marks a retry loop.
        """
        if block is None:
            return False
        body = block.body if isinstance(block, cst.Else) else block
        if isinstance(body, cst.IndentedBlock) and any(
            isinstance(statement, cst.SimpleStatementLine)
            and any(isinstance(small, (cst.Break, cst.Return)) for small in statement.body)
            for statement in body.body
        ):
            return True
        return any(isinstance(node, cst.Return) and node.value is not None for node, _ in walk(body))

    def _is_scaffolding(self, statement: cst.CSTNode) -> bool:
        """A statement a retry loop may run before its ``try``: a guard, a sleep, a counter.

        Anything that fetches new data (``item = queue.get()``, a ``with`` block, an earlier
        ``try``) makes the loop an iteration over inputs, where skipping a bad one is fine. A
        model request (``reply = client.create(...)``, then ``json.loads`` in the ``try``) is
        part of the attempt: the loop re-asks until the answer parses.
        """
        if isinstance(statement, cst.If):
            return True
        if not isinstance(statement, cst.SimpleStatementLine):
            return False
        for small in statement.body:
            if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                if _fetches(small.value):
                    return False
            elif not isinstance(small, (cst.AugAssign, cst.Expr, cst.Pass)):
                return False
        return True

    def _is_interactive(self, loop: cst.While) -> bool:
        """True if the loop asks a person for input: re-asking after a typo is not a retry."""
        for node, _ in walk(loop.body):
            if not isinstance(node, cst.Call):
                continue
            name = last_segment(node.func) or ""
            if name == "input" or name.endswith("_input") or name in {"raw_input", "getpass"}:
                return True
            for callee in chained_callees(node.func):
                resolved = self.context.imports.resolve(callee) or ""
                if any(resolved == module or resolved.startswith(module + ".") for module in PROMPT_MODULES):
                    return True
        return False

    def _exits(self, node: cst.CSTNode) -> bool:
        """True if ``node`` contains a raise, return, break (of this loop) or process exit."""
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return False
        inner = isinstance(node, (cst.For, cst.While))
        for child, depth in walk(node):
            if isinstance(child, (cst.Raise, cst.Return)) or (isinstance(child, cst.Break) and not depth + inner):
                return True
            if isinstance(child, cst.Call) and self._is_exit_call(child):
                return True
        return False

    def _is_unconditional_exit(self, statement: cst.CSTNode) -> bool:
        if not isinstance(statement, cst.SimpleStatementLine):
            return False
        for small in statement.body:
            if isinstance(small, (cst.Break, cst.Return, cst.Raise)):
                return True
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and self._is_exit_call(small.value):
                return True
        return False

    def _is_exit_call(self, call: cst.Call) -> bool:
        if isinstance(call.func, cst.Name) and call.func.value in EXIT_BUILTINS:
            return True
        return self.context.imports.resolve(call.func) in EXIT_FUNCTIONS

    def _has_guard(self, loop: cst.While, bounds: dict[str, bool]) -> bool:
        """True if an ``if`` outside the loop's handlers tests a counter, a deadline or a clock,
        then exits (a guard inside a handler bounds only its own path: ``_falls_through``)."""
        for node in _outside_handlers(loop.body):
            if isinstance(node, cst.If) and self._reads_bound(node.test, bounds) and self._exits(node.body):
                return True
        return False

    def _falls_through(self, statements: Sequence[cst.CSTNode], path: _Path) -> bool:
        """True if some path through a handler's ``statements`` ends with no exit, no bound and
        the ``try``'s input unchanged.

        A path is bounded by an ``if`` that leaves (in either branch) on a test of anything
        but the failure itself: a counter, a clock, a flag (``if not should_retry: return``).
        A test that only inspects the caught exception (``isinstance(e, ...)``, ``"429" in
        str(e)``) picks which failures give up; its other branches still loop again. A path
        that rebinds what the ``try`` reads (``path = next_name()``, ``kwargs["port"] = free()``)
        moves on to another candidate rather than retrying. One pass: paths merge after each
        ``if``, so the cost is linear in the handler's size.
        """
        for statement in statements:
            if isinstance(statement, cst.If):
                branches = (statement.body, statement.orelse)
                leaves = any(branch is not None and self._exits(branch) for branch in branches)
                if leaves and not self._selects_failure(statement.test, path):
                    return False
                if not any(branch is None or self._falls_through(_statements(branch), path) for branch in branches):
                    return False
            elif self._exits(statement) or _rebinds(statement, path.reads):
                return False
        return True

    def _selects_failure(self, test: cst.BaseExpression, path: _Path) -> bool:
        """The test reads the caught exception and no counter or clock: it sorts failures."""
        if path.failure is None or self._reads_bound(test, path.bounds):
            return False
        return any(isinstance(node, cst.Name) and node.value == path.failure for node, _ in walk(test))

    def _reads_bound(self, expr: cst.BaseExpression, bounds: dict[str, bool]) -> bool:
        """True if ``expr`` reads a clock, a counter, or a name assigned from either.

        ``bounds`` memoises names (counters start as True), so each name is examined once per
        loop however many assignments and references a module has.
        """
        for node in [expr, *(child for child, _ in walk(expr))]:
            if isinstance(node, cst.Call) and last_segment(node.func) in TIME_FUNCTIONS:
                return True
            name = dotted_name(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
            if name is None:
                continue
            if name not in bounds:
                bounds[name] = False
                bounds[name] = any(self._reads_bound(value, bounds) for value in self.bindings.get(name, ()))
            if bounds[name]:
                return True
        return False

    def _calls_llm(self, loop: cst.While) -> bool:
        return any(isinstance(node, cst.Call) and self._is_llm_call(node) for node, _ in walk(loop.body))

    def _is_llm_call(self, call: cst.Call) -> bool:
        if last_segment(call.func) not in LLM_VERBS:
            return False
        resolved = self.context.imports.resolve(call.func)
        if resolved is not None:
            return _is_llm_name(resolved)
        receiver = call.func.value if isinstance(call.func, cst.Attribute) else None
        while isinstance(receiver, cst.Attribute):
            name = dotted_name(receiver)
            if name is not None and self._is_llm_receiver(name):
                return True
            receiver = receiver.value
        if isinstance(receiver, cst.Name):
            return self._is_llm_receiver(receiver.value)
        if isinstance(receiver, cst.Call):
            return _is_llm_name(self.context.imports.resolve(receiver.func) or "")
        return False

    def _is_llm_receiver(self, name: str) -> bool:
        for value in self.bindings.get(name, ()):
            if isinstance(value, cst.Await):
                value = value.expression
            if isinstance(value, cst.Call) and _is_llm_name(self.context.imports.resolve(value.func) or ""):
                return True
        return False


def _is_llm_name(qualified: str) -> bool:
    return any(qualified == module or qualified.startswith(module + ".") for module in LLM_MODULES)


def _statements(block: cst.CSTNode) -> Sequence[cst.CSTNode]:
    """The statements of a block (an indented body, a one-line suite, or an ``else``)."""
    if isinstance(block, cst.Else):
        block = block.body
    if isinstance(block, cst.IndentedBlock):
        return block.body
    return (block,)


def _outside_handlers(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Nodes below ``node`` (as :func:`walk`) that are not inside an ``except`` handler."""
    stack: list[cst.CSTNode] = list(reversed(node.children))
    while stack:
        current = stack.pop()
        if isinstance(current, (cst.ExceptHandler, cst.ExceptStarHandler)):
            continue
        yield current
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        stack.extend(reversed(current.children))


def _counters(loop: cst.While) -> set[str]:
    """Names the loop increments or decrements: ``n += 1``, ``n -= 1``, ``n = n + 1``."""
    names: set[str] = set()
    for node, _ in walk(loop.body):
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
            name = dotted_name(node.target)
            if name is not None:
                names.add(name)
        elif isinstance(node, cst.Assign) and isinstance(node.value, cst.BinaryOperation):
            operands = {dotted_name(node.value.left), dotted_name(node.value.right)}
            names.update(
                name for target in node.targets if (name := dotted_name(target.target)) is not None and name in operands
            )
    return names


def _catches_a_failure(handler: cst.ExceptHandler | cst.ExceptStarHandler) -> bool:
    """True unless every caught type looks like a signal rather than a failure.

    ``except SwitchCoder`` (control flow), ``except asyncio.CancelledError`` (waiting on through
    a cancel) and ``except KeyboardInterrupt`` do not mean "the call failed, try it again".
    """
    caught = handler.type
    if caught is None:
        return True
    types = [element.value for element in caught.elements] if isinstance(caught, cst.Tuple) else [caught]
    return any(_looks_like_failure(last_segment(t) or "") for t in types)


def _looks_like_failure(name: str) -> bool:
    if name in CANCELLATION:
        return False
    return not name or any(word in name for word in FAILURE_WORDS)


@dataclasses.dataclass(frozen=True)
class _Path:
    """What a path through a handler is judged against."""

    failure: str | None
    """The caught exception's name (``except E as failure``)."""
    bounds: dict[str, bool]
    """Names known to hold a counter or a clock (see ``_reads_bound``)."""
    reads: frozenset[str]
    """Names and dotted names the ``try`` reads."""


def _reads(body: cst.CSTNode) -> frozenset[str]:
    return frozenset(
        name for node, _ in walk(body) if isinstance(node, (cst.Name, cst.Attribute)) and (name := dotted_name(node))
    )


def _rebinds(statement: cst.CSTNode, reads: frozenset[str]) -> bool:
    """``statement`` assigns a name, attribute or item of something the ``try`` reads: the loop
    moves on to another candidate (a free file name, a free port) instead of retrying."""
    for node in [statement, *(child for child, _ in walk(statement))]:
        if isinstance(node, cst.Assign):
            for target in node.targets:
                base: cst.BaseExpression = target.target
                while isinstance(base, cst.Subscript):
                    base = base.value
                if dotted_name(base) in reads:
                    return True
    return False


def _returns_a_value_if(statement: cst.CSTNode) -> bool:
    """``if ok: return result`` after the ``try``: the loop's exit on success."""
    if not isinstance(statement, cst.If) or not isinstance(statement.body, cst.IndentedBlock):
        return False
    return any(
        isinstance(line, cst.SimpleStatementLine)
        and any(isinstance(small, cst.Return) and small.value is not None for small in line.body)
        for line in statement.body.body
    )


def _fetches(value: cst.BaseExpression) -> bool:
    """The value awaits or calls something other than arithmetic or a model request (whose
    arguments, such as the prompt it formats, belong to the request)."""
    stack: list[cst.CSTNode] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Await) and _is_request(node.expression):
            continue
        if isinstance(node, cst.Await):
            return True
        if isinstance(node, cst.Call):
            if _is_request(node):
                stack.append(node.func)
                continue
            if last_segment(node.func) not in ARITHMETIC_CALLS:
                return True
        if not isinstance(node, (cst.Lambda, cst.FunctionDef)):
            stack.extend(node.children)
    return False


def _is_request(node: cst.BaseExpression) -> bool:
    """A call named like a model request (``.create``, ``.generate``, ``.invoke``...)."""
    return isinstance(node, cst.Call) and last_segment(node.func) in LLM_VERBS


def _waits(body: cst.CSTNode) -> bool:
    """The ``try`` waits with a timeout (``future.result(timeout=...)``, ``queue.get(timeout=1)``,
    ``event.wait(5)``): a loop polling for something to finish, not retrying a failure."""
    for node, _ in walk(body):
        if isinstance(node, cst.Call) and last_segment(node.func) in WAIT_METHODS:
            if any(arg.keyword is not None and arg.keyword.value == "timeout" for arg in node.args):
                return True
            if last_segment(node.func) in {"wait", "join", "result"} and node.args:
                return True
    return False


def _continues(body: cst.CSTNode) -> bool:
    return any(isinstance(node, cst.Continue) and not depth for node, depth in walk(body))


RULES: tuple[type[Rule], ...] = (UnboundedRetryLoop,)
