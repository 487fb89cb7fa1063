"""One module's LLM requests, guards and ``enforce()`` calls, shared by AF101-AF103.

The traversal only records (bindings, frames, candidate calls); every decision is taken in
:meth:`ModuleAnalysis.finish`, once the whole module and its imports have been seen, so a
client assigned in ``__init__`` after the method that uses it, or a module-level client
defined below a function, still resolves. Scopes are a cheap approximation of Python's:
function scopes chained to the module scope, class attributes (``self.x = ...`` in any
method, or a class-level assignment) per class, flow-insensitive (any binding counts).
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator, Sequence

import libcst as cst

from agentfuse.lint_rules._llm_catalogue import (
    ARGV_FUNCTIONS,
    CLI_HOUSEKEEPING,
    CLI_INFO_FLAGS,
    ENFORCE_NAMES,
    GUARD_CALL_METHODS,
    GUARD_CLASS_NAMES,
    GUARD_SCOPE_METHODS,
    LLM_CLIS,
    SUBPROCESS_FUNCTIONS,
    WRAPPER_SEGMENTS,
    ClientTable,
    string_list,
    tables_with_options,
)
from agentfuse.lint_rules.base import FileContext, Rule, dotted_name

COMMAND_KEYWORDS = frozenset({"args", "cmd", "command"})
SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|"})
MAX_RESOLVE_DEPTH = 12
SHARED_KEY = "_agentfuse_llm_analysis"

Receiver = tuple[ClientTable, str]
"""A client table and the path already walked on it (``(OPENAI, "chat.completions")``)."""


@dataclasses.dataclass(eq=False)
class ClassInfo:
    name: str
    bases: tuple[str, ...]
    attrs: dict[str, list[Binding]] = dataclasses.field(default_factory=dict)
    methods: dict[str, list[FunctionInfo]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Scope:
    """A function's (or the module's) local names; ``self_name`` is visible to nested scopes."""

    parent: Scope | None
    cls: ClassInfo | None = None
    self_name: str | None = None
    bindings: dict[str, list[Binding]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Binding:
    """``expr`` was assigned to a name (or is its annotation), evaluated in ``scope``."""

    expr: cst.BaseExpression
    scope: Scope
    annotation: bool = False


@dataclasses.dataclass(eq=False)
class FunctionInfo:
    name: str
    decorators: tuple[cst.BaseExpression, ...]
    scope: Scope
    """Where the decorators are evaluated (the scope around the ``def``)."""
    call_sites: list[Frame | None] = dataclasses.field(default_factory=list)
    handed_to_guard: bool = False
    returns: list[Binding] = dataclasses.field(default_factory=list)
    """What its ``return`` statements return (a factory of clients returns a client)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """A lexical region that may guard what it contains: a function, a ``with``, a lambda."""

    parent: Frame | None
    scope: Scope
    function: FunctionInfo | None = None
    contexts: tuple[cst.BaseExpression, ...] = ()
    lambda_node: cst.Lambda | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Candidate:
    """A call that may be a request, or a request method handed to another call (``via``)."""

    node: cst.BaseExpression
    func: cst.BaseExpression
    scope: Scope
    frame: Frame | None
    via: cst.Call | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class LlmCall:
    """A call that sends an LLM request; ``api`` names it (``openai chat.completions.create``)."""

    node: cst.BaseExpression
    api: str
    guarded: bool


@dataclasses.dataclass(frozen=True, eq=False)
class EnforceCall:
    node: cst.Call
    scope: Scope


def _string_value(node: cst.BaseExpression) -> str | None:
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _leading_text(node: cst.BaseExpression) -> str | None:
    """The static text of a string literal, or of an f-string up to its first expression."""
    value = _string_value(node)
    if value is not None or not isinstance(node, cst.FormattedString):
        return value
    text: list[str] = []
    for part in node.parts:
        if not isinstance(part, cst.FormattedStringText):
            text.append(" \x00")
            break
        text.append(part.value)
    return "".join(text)


def _split_command(text: str) -> list[str | None]:
    try:
        words = shlex.split(text, comments=False)
    except ValueError:
        words = text.split()
    return [None if "\x00" in word else word for word in words]


def _attribute_chain(func: cst.BaseExpression) -> list[str]:
    """The attribute names of ``a.b().c.d`` from the outermost call down: ``["c", "d"]``."""
    names: list[str] = []
    while isinstance(func, cst.Attribute):
        names.append(func.attr.value)
        func = func.value
    names.reverse()
    return names


def _strip_wrappers(path: str) -> str:
    if not any(segment in path for segment in WRAPPER_SEGMENTS):
        return path
    return ".".join(part for part in path.split(".") if part not in WRAPPER_SEGMENTS)


def _agentfuse_name(qualified: str | None, names: frozenset[str]) -> bool:
    if not qualified or not qualified.startswith("agentfuse"):
        return False
    return qualified.rpartition(".")[2] in names


def _join(path: str, attr: str) -> str:
    return f"{path}.{attr}" if path else attr


class ModuleAnalysis:
    """Records one module during the traversal, then decides in :meth:`finish`."""

    def __init__(self, context: FileContext) -> None:
        self.context = context
        self.imports = context.imports
        self.catalogue = tables_with_options(context.options)
        self.guard_names = frozenset(string_list(context.options.get("guard-names")))
        self.module_scope = Scope(parent=None)
        self._scopes: list[Scope] = [self.module_scope]
        self._owners: list[ClassInfo | FunctionInfo] = []
        self._frame: Frame | None = None
        self._classes: dict[str, list[ClassInfo]] = {}
        self._functions: dict[str, list[FunctionInfo]] = {}
        self._candidates: list[Candidate] = []
        self._name_calls: list[tuple[str, Frame | None]] = []
        self._self_calls: list[tuple[str, ClassInfo, Frame | None]] = []
        self._guard_calls: list[tuple[cst.Call, Scope]] = []
        self._enforce_candidates: list[EnforceCall] = []
        self._prefixes: dict[int, frozenset[str]] = {}
        self._function_verdicts: dict[int, bool | None] = {}
        self._guarded_lambdas: set[int] = set()
        self._receiver_memo: dict[int, Receiver | None] = {}
        self._guard_memo: dict[int, bool] = {}
        self._finished = False
        self.llm_calls: list[LlmCall] = []
        self.enforce_calls: list[EnforceCall] = []
        self.derived: dict[str, object] = {}
        """Results other rules derive from the finished analysis, computed once per file."""

    @classmethod
    def shared(cls, context: FileContext) -> tuple[ModuleAnalysis, bool]:
        """The file's analysis, and whether the caller is the rule that feeds it.

        AF101-AF103 share one analysis per file check (kept on the per-file context, never at
        module level), so enabling all three costs one collection, not three.
        """
        store = context.shared
        found = store.get(SHARED_KEY)
        if isinstance(found, ModuleAnalysis) and found.context is context:
            return found, False
        analysis = cls(context)
        store[SHARED_KEY] = analysis
        return analysis, True

    # -- recording -------------------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        return self._scopes[-1]

    def _self_class(self, name: str, scope: Scope) -> ClassInfo | None:
        current: Scope | None = scope
        while current is not None:
            if current.self_name is not None:
                return current.cls if current.self_name == name else None
            current = current.parent
        return None

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression, *, annotation: bool = False) -> None:
        owner = self._owners[-1] if self._owners else None
        if isinstance(target, cst.Name):
            binding = Binding(value, self.scope, annotation)
            table = owner.attrs if isinstance(owner, ClassInfo) else self.scope.bindings
            table.setdefault(target.value, []).append(binding)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            cls = self._self_class(target.value.value, self.scope)
            if cls is not None:
                cls.attrs.setdefault(target.attr.value, []).append(Binding(value, self.scope, annotation))
        elif isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)):
            if len(target.elements) == len(value.elements):
                for left, right in zip(target.elements, value.elements):
                    self._bind(left.value, right.value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = tuple(name for arg in node.bases if (name := dotted_name(arg.value)))
        info = ClassInfo(node.name.value, bases)
        self._classes.setdefault(info.name, []).append(info)
        self._owners.append(info)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._owners.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        owner = self._owners[-1] if self._owners else None
        cls = owner if isinstance(owner, ClassInfo) else None
        outer = self.scope
        decorators = tuple(d.decorator for d in node.decorators)
        info = FunctionInfo(node.name.value, decorators, outer)
        if cls is not None:
            cls.methods.setdefault(info.name, []).append(info)
        else:
            self._functions.setdefault(info.name, []).append(info)
        params = node.params
        positional = [*params.posonly_params, *params.params]
        is_static = any(dotted_name(d) == "staticmethod" for d in decorators)
        self_name = positional[0].name.value if cls is not None and positional and not is_static else None
        scope = Scope(parent=outer, cls=cls, self_name=self_name)
        everything = [*positional, *params.kwonly_params]
        everything += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
        for param in everything:
            if param.annotation is not None:
                scope.bindings.setdefault(param.name.value, []).append(
                    Binding(param.annotation.annotation, outer, annotation=True)
                )
            if param.default is not None:
                scope.bindings.setdefault(param.name.value, []).append(Binding(param.default, outer))
        self._scopes.append(scope)
        self._owners.append(info)
        self._frame = Frame(parent=self._frame, scope=outer, function=info)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scopes.pop()
        self._owners.pop()
        assert self._frame is not None
        self._frame = self._frame.parent

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._frame = Frame(parent=self._frame, scope=self.scope, lambda_node=node)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        assert self._frame is not None
        self._frame = self._frame.parent

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            if item.asname is not None and isinstance(item.asname.name, cst.Name):
                self._bind(item.asname.name, item.item)
        contexts = tuple(item.item for item in node.items)
        self._frame = Frame(parent=self._frame, scope=self.scope, contexts=contexts)

    def leave_With(self, node: cst.With) -> None:
        assert self._frame is not None
        self._frame = self._frame.parent

    def visit_Return(self, node: cst.Return) -> None:
        owner = self._owners[-1] if self._owners else None
        if node.value is not None and isinstance(owner, FunctionInfo):
            owner.returns.append(Binding(node.value, self.scope))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target, node.annotation.annotation, annotation=True)
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, node.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name):
            last = func.value
            self._name_calls.append((last, self._frame))
            if last in self.imports.aliases and last not in self.catalogue.call_names:
                self._candidates.append(Candidate(node, func, self.scope, self._frame))
        elif isinstance(func, cst.Attribute):
            last = func.attr.value
            if isinstance(func.value, cst.Name):
                cls = self._self_class(func.value.value, self.scope)
                if cls is not None:
                    self._self_calls.append((last, cls, self._frame))
            if last in GUARD_CALL_METHODS:
                self._guard_calls.append((node, self.scope))
        else:
            return
        if last in self.catalogue.call_names:
            self._candidates.append(Candidate(node, func, self.scope, self._frame))
        for arg in node.args:
            value = arg.value
            if isinstance(value, cst.Attribute) and value.attr.value in self.catalogue.call_names:
                self._candidates.append(Candidate(value, value, self.scope, self._frame, via=node))
        if last in ENFORCE_NAMES or (isinstance(func, cst.Name) and last in self.imports.aliases):
            self._enforce_candidates.append(EnforceCall(node, self.scope))

    # -- deciding --------------------------------------------------------------------------

    def finish(self) -> None:
        """Resolve everything recorded; idempotent."""
        if self._finished:
            return
        self._finished = True
        self._link_call_sites()
        self._mark_handed_to_guard()
        for candidate in self._candidates:
            api = self._classify(candidate)
            if api is not None:
                guarded = self._handed_to_guard(candidate) or self._frame_guarded(candidate.frame)
                self.llm_calls.append(LlmCall(candidate.node, api, guarded))
        self.enforce_calls = [
            call for call in self._enforce_candidates if self.is_enforce(self.imports.resolve(call.node.func))
        ]

    @staticmethod
    def is_enforce(qualified: str | None) -> bool:
        """``agentfuse.enforce`` (or ``agentfuse.<module>.enforce``)."""
        return _agentfuse_name(qualified, ENFORCE_NAMES)

    @staticmethod
    def _is_guard_class(qualified: str | None) -> bool:
        return _agentfuse_name(qualified, GUARD_CLASS_NAMES)

    def _handed_to_guard(self, candidate: Candidate) -> bool:
        """``guard.call(client.chat.completions.create, ...)``: the guard makes the request."""
        via = candidate.via
        return (
            via is not None
            and isinstance(via.func, cst.Attribute)
            and via.func.attr.value in GUARD_CALL_METHODS
            and self.is_guard(via.func.value, candidate.scope)
        )

    def _link_call_sites(self) -> None:
        for name, frame in self._name_calls:
            for info in self._functions.get(name, ()):
                info.call_sites.append(frame)
        for name, cls, frame in self._self_calls:
            for info in self._methods(cls, name):
                info.call_sites.append(frame)

    def _local_functions(self, func: cst.BaseExpression, scope: Scope) -> list[FunctionInfo]:
        """The functions of this module a call may reach: ``name()`` or ``self.name()``."""
        if isinstance(func, cst.Name):
            return self._functions.get(func.value, [])
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            cls = self._self_class(func.value.value, scope)
            return self._methods(cls, func.attr.value) if cls is not None else []
        return []

    def _class_chain(self, cls: ClassInfo) -> Iterator[ClassInfo]:
        """The class and its bases defined in this module (each once)."""
        seen: set[int] = set()
        pending = [cls]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            yield current
            for base in current.bases:
                pending.extend(self._classes.get(base.rpartition(".")[2], ()))

    def _methods(self, cls: ClassInfo, name: str) -> list[FunctionInfo]:
        return [info for c in self._class_chain(cls) for info in c.methods.get(name, ())]

    def _attr_bindings(self, cls: ClassInfo, name: str) -> list[Binding]:
        return [binding for c in self._class_chain(cls) for binding in c.attrs.get(name, ())]

    def _lookup(self, name: str, scope: Scope) -> Sequence[Binding]:
        current: Scope | None = scope
        while current is not None:
            found = current.bindings.get(name)
            if found:
                return found
            current = current.parent
        return ()

    def bindings_of(self, expr: cst.BaseExpression, scope: Scope) -> Sequence[Binding]:
        """What a name, or a ``self.attr``, was bound to."""
        if isinstance(expr, cst.Name):
            return self._lookup(expr.value, scope)
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name):
            cls = self._self_class(expr.value.value, scope)
            if cls is not None:
                return self._attr_bindings(cls, expr.attr.value)
        return ()

    def _mark_handed_to_guard(self) -> None:
        for call, scope in self._guard_calls:
            assert isinstance(call.func, cst.Attribute)
            if not call.args or not self.is_guard(call.func.value, scope):
                continue
            target = call.args[0].value
            if isinstance(target, cst.Lambda):
                self._guarded_lambdas.add(id(target))
            elif isinstance(target, cst.Name):
                for info in self._functions.get(target.value, ()):
                    info.handed_to_guard = True
            elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
                cls = self._self_class(target.value.value, scope)
                for info in self._methods(cls, target.attr.value) if cls else ():
                    info.handed_to_guard = True

    # guards

    def is_guard(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> bool:
        """True if ``expr`` is a guard, or a guard's step/child (usable as decorator or context)."""
        if depth > MAX_RESOLVE_DEPTH:
            return False
        if self.guard_names and dotted_name(expr) in self.guard_names:
            return True
        if isinstance(expr, cst.Call):
            qualified = self.imports.resolve(expr.func)
            if self.is_enforce(qualified) or self._is_guard_class(qualified):
                return True
            func = expr.func
            return (
                isinstance(func, cst.Attribute)
                and func.attr.value in GUARD_SCOPE_METHODS
                and self.is_guard(func.value, scope, depth + 1)
            )
        if isinstance(expr, cst.Attribute) and expr.attr.value in GUARD_SCOPE_METHODS:
            if self.is_guard(expr.value, scope, depth + 1):
                return True
        return any(self._binding_is_guard(binding, depth) for binding in self.bindings_of(expr, scope))

    def _binding_is_guard(self, binding: Binding, depth: int) -> bool:
        """Memoised per binding (a binding being decided counts as no guard: no loops)."""
        key = id(binding)
        if key in self._guard_memo:
            return self._guard_memo[key]
        self._guard_memo[key] = False
        if binding.annotation:
            verdict = any(self._is_guard_class(name) for name in self._annotation_names(binding.expr))
        else:
            verdict = self.is_guard(binding.expr, binding.scope, depth + 1)
        self._guard_memo[key] = verdict
        return verdict

    def _frame_guarded(self, frame: Frame | None) -> bool:
        while frame is not None:
            if frame.contexts and any(self.is_guard(c, frame.scope) for c in frame.contexts):
                return True
            if frame.lambda_node is not None and id(frame.lambda_node) in self._guarded_lambdas:
                return True
            if frame.function is not None and self._function_guarded(frame.function):
                return True
            frame = frame.parent
        return False

    def _function_guarded(self, info: FunctionInfo) -> bool:
        """Decorated by a guard, handed to ``guard.call``, or only ever called under a guard.

        A function still being decided counts as unguarded (so recursion alone never guards).
        """
        key = id(info)
        if key in self._function_verdicts:
            return bool(self._function_verdicts[key])
        self._function_verdicts[key] = None
        verdict = (
            info.handed_to_guard
            or any(self.is_guard(d, info.scope) for d in info.decorators)
            or (bool(info.call_sites) and all(self._frame_guarded(site) for site in info.call_sites))
        )
        self._function_verdicts[key] = verdict
        return verdict

    # LLM requests

    def _classify(self, candidate: Candidate) -> str | None:
        """The API a candidate call sends a request to, or None if it is not an LLM request."""
        func, scope = candidate.func, candidate.scope
        qualified = self.imports.resolve(func)
        if qualified is not None and not self.bindings_of(func, scope):
            hit = self.catalogue.function(_strip_wrappers(qualified))
            if hit is not None:
                table, path = hit
                return table.api_name(path)
            if qualified in SUBPROCESS_FUNCTIONS and isinstance(candidate.node, cst.Call):
                return self._cli_call(candidate.node, qualified, scope)
        if not isinstance(func, cst.Attribute):
            return None
        receiver = self._receiver(func.value, scope)
        if receiver is not None:
            table, path = receiver
            full = _strip_wrappers(_join(path, func.attr.value))
            return table.api_name(full) if full in table.methods else None
        if self._bound_to_other(func.value, scope) or self._own_method(func, scope):
            return None
        return self._distinctive(func)

    def _own_method(self, func: cst.Attribute, scope: Scope) -> bool:
        """``self.invoke_model(...)`` where the class defines ``invoke_model``: a call of the
        class's own wrapper, whose request inside is a candidate of its own."""
        if not isinstance(func.value, cst.Name):
            return False
        cls = self._self_class(func.value.value, scope)
        return cls is not None and bool(self._methods(cls, func.attr.value))

    def _bound_to_other(self, expr: cst.BaseExpression, scope: Scope) -> bool:
        """True if the receiver's root is known to be something else than a client.

        Something else: built by an imported callable or a class of this module that is not
        in the catalogue (``boto3.client("s3")``, ``Registry()``), annotated with another
        imported type, or a literal.
        """
        while True:
            bindings = self.bindings_of(expr, scope)
            if bindings:
                return all(self._is_other_value(binding) for binding in bindings)
            if not isinstance(expr, cst.Attribute):
                return False
            expr = expr.value

    def _is_other_value(self, binding: Binding) -> bool:
        value = binding.expr
        if binding.annotation:
            return bool(self._annotation_names(value))
        if isinstance(value, cst.Call):
            return self.imports.resolve(value.func) is not None or dotted_name(value.func) in self._classes
        return isinstance(
            value, (cst.BaseString, cst.Integer, cst.Float, cst.Dict, cst.List, cst.Tuple, cst.Set, cst.Comparison)
        )

    def _distinctive(self, func: cst.Attribute) -> str | None:
        """A request path specific enough to flag on an unresolved receiver."""
        chain = _attribute_chain(func)
        for start in range(len(chain)):
            path = _strip_wrappers(".".join(chain[start:]))
            for table in self.catalogue.tables:
                if path in table.distinctive and any(self.imports.imports_module(m) for m in table.modules):
                    return table.api_name(path)
        return None

    def _prefixes_of(self, table: ClientTable) -> frozenset[str]:
        found = self._prefixes.get(id(table))
        if found is None:
            prefixes: set[str] = set()
            for path in (*table.methods, *table.factories):
                parts = path.split(".")
                prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
            found = frozenset(prefixes)
            self._prefixes[id(table)] = found
        return found

    def _annotation_names(self, expr: cst.BaseExpression) -> list[str]:
        """Qualified names in a type annotation (``Optional[OpenAI]``, ``"OpenAI" | None``)."""
        if isinstance(expr, cst.Subscript):
            indexes = [element.slice.value for element in expr.slice if isinstance(element.slice, cst.Index)]
            return [name for index in indexes for name in self._annotation_names(index)]
        if isinstance(expr, cst.BinaryOperation):
            return self._annotation_names(expr.left) + self._annotation_names(expr.right)
        text = _string_value(expr)
        qualified = self.imports.resolve_dotted(text.strip()) if text else self.imports.resolve(expr)
        return [qualified] if qualified else []

    def _constructed(self, qualified: str | None) -> Receiver | None:
        if qualified is None:
            return None
        for table in self.catalogue.tables:
            if table.builds_client(qualified):
                return table, ""
        return None

    def _service_client(self, call: cst.Call) -> Receiver | None:
        """boto3 ``<session or module>.client("bedrock-runtime")``."""
        arg = next((a for a in call.args if a.keyword is None or a.keyword.value == "service_name"), None)
        service = _string_value(arg.value) if arg is not None else None
        if service is None:
            return None
        for table in self.catalogue.tables:
            if table.service == service and any(self.imports.imports_module(m) for m in table.modules):
                return table, ""
        return None

    def _receiver(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> Receiver | None:
        """The client (and path walked on it) that ``expr`` evaluates to, if known."""
        if depth > MAX_RESOLVE_DEPTH:
            return None
        if isinstance(expr, cst.Await):
            return self._receiver(expr.expression, scope, depth + 1)
        if isinstance(expr, cst.Call):
            return self._call_receiver(expr, scope, depth)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            for side in (expr.left, expr.right):
                found = self._receiver(side, scope, depth + 1)
                if found is not None and found[0].provider == "langchain":
                    return found[0], ""
            return None
        bindings = self.bindings_of(expr, scope)
        if bindings:
            return next(filter(None, (self._binding_receiver(b, depth) for b in bindings)), None)
        if isinstance(expr, cst.Name):
            qualified = self.imports.resolve(expr)
            for table in self.catalogue.tables:
                if table.module_is_client and qualified in table.modules:
                    return table, ""
            return None
        if isinstance(expr, cst.Attribute):
            inner = self._receiver(expr.value, scope, depth + 1)
            if inner is None:
                return None
            table, path = inner
            attr = expr.attr.value
            if attr in WRAPPER_SEGMENTS:
                return inner
            full = _join(path, attr)
            return (table, full) if full in self._prefixes_of(table) else None
        return None

    def _binding_receiver(self, binding: Binding, depth: int) -> Receiver | None:
        """Memoised per binding (a binding being resolved counts as unknown: no loops)."""
        key = id(binding)
        if key in self._receiver_memo:
            return self._receiver_memo[key]
        self._receiver_memo[key] = None
        if binding.annotation:
            found = next(filter(None, map(self._constructed, self._annotation_names(binding.expr))), None)
        else:
            found = self._receiver(binding.expr, binding.scope, depth + 1)
        self._receiver_memo[key] = found
        return found

    def _call_receiver(self, call: cst.Call, scope: Scope, depth: int) -> Receiver | None:
        func = call.func
        if not self.bindings_of(func, scope):
            found = self._constructed(self.imports.resolve(func))
            if found is not None:
                return found
            for maker in self._local_functions(func, scope):
                found = next(filter(None, (self._binding_receiver(r, depth) for r in maker.returns)), None)
                if found is not None:
                    return found
        if not isinstance(func, cst.Attribute):
            return None
        if func.attr.value == "client":
            found = self._service_client(call)
            if found is not None:
                return found
        inner = self._receiver(func.value, scope, depth + 1)
        if inner is None:
            return None
        table, path = inner
        attr = func.attr.value
        if not path and attr in table.passthrough:
            return inner
        factory = table.factories.get(_join(path, attr))
        if factory is not None:
            return self.catalogue.by_name[factory], ""
        return None

    # subprocess CLIs

    def _argv(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> list[str | None]:
        if isinstance(expr, (cst.List, cst.Tuple)):
            words: list[str | None] = []
            for element in expr.elements:
                if isinstance(element, cst.StarredElement):
                    break
                words.append(_string_value(element.value))
            return words
        text = _leading_text(expr)
        if text is not None:
            return _split_command(text)
        if isinstance(expr, cst.Call) and self.imports.resolve(expr.func) == "shlex.split" and expr.args:
            return self._argv(expr.args[0].value, scope, depth)
        if depth < 2:
            for binding in self.bindings_of(expr, scope):
                if not binding.annotation and (words := self._argv(binding.expr, binding.scope, depth + 1)):
                    return words
        return []

    def _cli_call(self, call: cst.Call, qualified: str, scope: Scope) -> str | None:
        positional = [arg.value for arg in call.args if arg.keyword is None and not arg.star]
        if qualified in ARGV_FUNCTIONS:
            words = [_string_value(value) for value in positional]
        else:
            keywords = (a.value for a in call.args if a.keyword is not None and a.keyword.value in COMMAND_KEYWORDS)
            command = positional[0] if positional else next(keywords, None)
            words = self._argv(command, scope) if command is not None else []
        starts = [0] + [i + 1 for i, word in enumerate(words) if word in SHELL_SEPARATORS]
        for start in starts:
            if start >= len(words) or words[start] is None:
                continue
            program = str(words[start]).rsplit("/", 1)[-1]
            if program not in LLM_CLIS:
                continue
            rest = words[start + 1 :]
            needed = LLM_CLIS[program]
            if needed is not None and (not rest or rest[0] != needed):
                continue
            if rest and (rest[0] in CLI_INFO_FLAGS or rest[0] in CLI_HOUSEKEEPING.get(program, ())):
                continue
            label = f"{program} {needed}" if needed else program
            return f"the `{label}` CLI run through {qualified}"
        return None


class LlmAnalysisRule(Rule):
    """Base of the rules that read the shared :class:`ModuleAnalysis` (not registered itself)."""

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.analysis, self._feeds = ModuleAnalysis.shared(context)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self._feeds:
            self.analysis.visit_ClassDef(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        if self._feeds:
            self.analysis.leave_ClassDef(original_node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._feeds:
            self.analysis.visit_FunctionDef(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        if self._feeds:
            self.analysis.leave_FunctionDef(original_node)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        if self._feeds:
            self.analysis.visit_Lambda(node)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        if self._feeds:
            self.analysis.leave_Lambda(original_node)

    def visit_With(self, node: cst.With) -> None:
        if self._feeds:
            self.analysis.visit_With(node)

    def leave_With(self, original_node: cst.With) -> None:
        if self._feeds:
            self.analysis.leave_With(original_node)

    def visit_Return(self, node: cst.Return) -> None:
        if self._feeds:
            self.analysis.visit_Return(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if self._feeds:
            self.analysis.visit_Assign(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self._feeds:
            self.analysis.visit_AnnAssign(node)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        if self._feeds:
            self.analysis.visit_NamedExpr(node)

    def visit_Call(self, node: cst.Call) -> None:
        if self._feeds:
            self.analysis.visit_Call(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        self.analysis.finish()
        self.check(self.analysis)

    def check(self, analysis: ModuleAnalysis) -> None:
        """Report from the finished analysis."""
        raise NotImplementedError
