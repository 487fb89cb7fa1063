"""One module's LLM requests, guards and ``enforce()`` calls, shared by AF101-AF103.

The traversal only records (bindings, frames, candidate calls); every decision is taken in
:meth:`ModuleAnalysis.finish`, once the whole module and its imports have been seen, so a
client assigned in ``__init__`` after the method that uses it, or a module-level client
defined below a function, still resolves. Scopes are a cheap approximation of Python's:
function scopes chained to the module scope, class attributes (``self.x = ...`` in any
method, or a class-level assignment) per class, flow-insensitive (any binding counts).
Resolution lives in :mod:`._llm_resolve`, subprocess CLIs in :mod:`._llm_cli`.
"""

from __future__ import annotations

import re

import libcst as cst

from agentfuse.lint import limits
from agentfuse.lint.traversal import walk_module
from agentfuse.lint_rules._llm_catalogue import (
    ENFORCE_NAMES,
    FALLBACK_SHAPES,
    GUARD_CALL_METHODS,
    GUARD_CLASS_NAMES,
    GUARD_SCOPE_METHODS,
    LLM_TRIGGERS,
    SUBPROCESS_FUNCTIONS,
)
from agentfuse.lint_rules._llm_cli import cli_call
from agentfuse.lint_rules._llm_instrumented import ADAPTER_NAMES, INSTRUMENT_METHOD, listed_as_instrumented
from agentfuse.lint_rules._llm_model import (
    Binding,
    Candidate,
    ClassInfo,
    EnforceCall,
    Frame,
    FunctionInfo,
    LlmCall,
    Scope,
    agentfuse_name,
    attribute_chain,
    join_path,
    strip_wrappers,
)
from agentfuse.lint_rules._llm_resolve import MAX_RESOLVE_DEPTH, Resolver
from agentfuse.lint_rules.base import FileContext, ImportCollector, ImportTable, Rule, dotted_name

SHARED_KEY = "_agentfuse_llm_analysis"
INTROSPECTION = frozenset(
    {
        "iscoroutinefunction",
        "isasyncgenfunction",
        "isfunction",
        "ismethod",
        "signature",
        "getfullargspec",
        "getsource",
        "getdoc",
        "hasattr",
        "getattr",
        "setattr",
        "callable",
        "id",
        "repr",
        "str",
        "type",
        "isinstance",
        "wraps",
        "update_wrapper",
        "cast",
        "print",
        "patch",
        "object",
    }
)
"""Callables that look at a method handed to them without calling it."""
PARTIALS = frozenset({"partial", "partialmethod"})
_TRIGGERS = re.compile("|".join(f"(?:{t})" for t in LLM_TRIGGERS))


class ModuleAnalysis(Resolver):
    """Records one module during the traversal, then decides in :meth:`finish`."""

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._scopes: list[Scope] = [self.module_scope]
        self._owners: list[ClassInfo | FunctionInfo] = []
        self._frame: Frame | None = None
        self._candidates: list[Candidate] = []
        self._name_calls: list[tuple[str, Frame | None]] = []
        self._self_calls: list[tuple[str, ClassInfo, Frame | None]] = []
        self._guard_calls: list[tuple[cst.Call, Scope]] = []
        self._instrument_calls: list[tuple[cst.Call, Scope]] = []
        """``x.instrument()`` and adapter constructions: is a guard instrumented here?"""
        self._enforce_candidates: list[EnforceCall] = []
        self._assigned: set[int] = set()
        self._function_verdicts: dict[int, bool | None] = {}
        self._guarded_lambdas: set[int] = set()
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

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression, *, annotation: bool = False) -> None:
        owner = self._owners[-1] if self._owners else None
        if isinstance(target, cst.Name):
            binding = Binding(value, self.scope, annotation)
            table = owner.attrs if isinstance(owner, ClassInfo) else self.scope.bindings
            table.setdefault(target.value, []).append(binding)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            cls = self.self_class(target.value.value, self.scope)
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
        self._assigned.add(id(node.value))
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target, node.annotation.annotation, annotation=True)
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        """``for x in (a, b):`` binds ``x`` to each element of a literal tuple, list or set."""
        if isinstance(node.iter, (cst.Tuple, cst.List, cst.Set)):
            for element in node.iter.elements:
                if not isinstance(element, cst.StarredElement):
                    self._bind(node.target, element.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        maybe_alias = False  # ``name(...)``/``self.name(...)`` may call a request held in a variable
        if isinstance(func, cst.Name):
            last = func.value
            self._name_calls.append((last, self._frame))
            maybe_alias = True
        elif isinstance(func, cst.Attribute):
            last = func.attr.value
            if isinstance(func.value, cst.Name):
                cls = self.self_class(func.value.value, self.scope)
                if cls is not None:
                    self._self_calls.append((last, cls, self._frame))
                    maybe_alias = True
            if last in GUARD_CALL_METHODS:
                self._guard_calls.append((node, self.scope))
        else:
            return
        if (last == INSTRUMENT_METHOD and not node.args) or last in ADAPTER_NAMES:
            self._instrument_calls.append((node, self.scope))
        if maybe_alias or last in self.catalogue.call_names:
            self._candidates.append(Candidate(node, func, self.scope, self._frame))
        if last not in INTROSPECTION and not (last in PARTIALS and id(node) in self._assigned):
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
        instrumented = self._instrumented()
        for candidate in self._candidates:
            api = self._classify(candidate)
            if api is not None:
                guarded = instrumented or self._handed_to_guard(candidate) or self._frame_guarded(candidate.frame)
                self.llm_calls.append(LlmCall(candidate.node, api, guarded))
        self.enforce_calls = [
            call for call in self._enforce_candidates if self.is_enforce(self.imports.resolve(call.node.func))
        ]

    @staticmethod
    def is_enforce(qualified: str | None) -> bool:
        """``agentfuse.enforce`` (or ``agentfuse.<module>.enforce``)."""
        return agentfuse_name(qualified, ENFORCE_NAMES)

    @staticmethod
    def _is_guard_class(qualified: str | None) -> bool:
        return agentfuse_name(qualified, GUARD_CLASS_NAMES)

    def _handed_to_guard(self, candidate: Candidate) -> bool:
        """``guard.call(client.chat.completions.create, ...)``: the guard makes the request."""
        via = candidate.via
        return (
            via is not None
            and isinstance(via.func, cst.Attribute)
            and via.func.attr.value in GUARD_CALL_METHODS
            and self.is_guard(via.func.value, candidate.scope)
        )

    def _instrumented(self) -> bool:
        """A guard is instrumented here (``guard.instrument()``, an adapter built with a guard), or
        ``[tool.agentfuse] instrumented`` lists the module: see :mod:`._llm_instrumented`."""
        for call, scope in self._instrument_calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value == INSTRUMENT_METHOD:
                if self.is_guard(func.value, scope):
                    return True
            elif agentfuse_name(self.imports.resolve(func), ADAPTER_NAMES):
                if any(self.is_guard(arg.value, scope) for arg in call.args):
                    return True
        return listed_as_instrumented(self.context)

    def _link_call_sites(self) -> None:
        for name, frame in self._name_calls:
            for info in self._functions.get(name, ()):
                info.call_sites.append(frame)
        for name, cls, frame in self._self_calls:
            for info in self.methods(cls, name):
                info.call_sites.append(frame)

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
                cls = self.self_class(target.value.value, scope)
                for info in self.methods(cls, target.attr.value) if cls else ():
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
            verdict = any(self._is_guard_class(name) for name in self.annotation_names(binding.expr))
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
        bound = self.bindings_of(func, scope)
        if not bound:
            qualified = self.qualified(func, scope)
            if qualified is not None:
                hit = self.catalogue.function(strip_wrappers(qualified))
                if hit is not None:
                    return hit[0].api_name(hit[1])
                if qualified in SUBPROCESS_FUNCTIONS and isinstance(candidate.node, cst.Call):
                    return cli_call(self, candidate.node, qualified, scope)
        elif candidate.via is None:
            return self.callable_api(func, scope)
        if not isinstance(func, cst.Attribute):
            return None
        receiver = self.receiver(func.value, scope)
        if receiver is not None:
            table, path = receiver
            full = strip_wrappers(join_path(path, func.attr.value))
            return table.api_name(full) if full in table.methods else None
        if self._own_method(func, scope):
            return None
        return self._shape(func, candidate) or self._distinctive(func, scope)

    def _own_method(self, func: cst.Attribute, scope: Scope) -> bool:
        """``self.invoke_model(...)`` where the class defines ``invoke_model``: a call of the
        class's own wrapper, whose request inside is a candidate of its own."""
        if not isinstance(func.value, cst.Name):
            return False
        cls = self.self_class(func.value.value, scope)
        return cls is not None and bool(self.methods(cls, func.attr.value))

    def _bound_to(self, expr: cst.BaseExpression, scope: Scope, strict: bool) -> bool:
        """True if the receiver's root is known to be something else than a client: a literal,
        or (``strict``) something built by a non-client callable (``boto3.client("s3")``)."""
        while True:
            bindings = self.bindings_of(expr, scope)
            if bindings:
                test = self.built_by_other if strict else self.is_other_value
                return all(test(binding) for binding in bindings)
            if not isinstance(expr, cst.Attribute):
                return False
            expr = expr.value

    def _shape(self, func: cst.Attribute, candidate: Candidate) -> str | None:
        """The API-shape fallback: a call chain ending like a request of one provider
        (``chat.completions.create``; ``messages.create`` with ``model=`` and ``max_tokens=``)."""
        if self._bound_to(func.value, candidate.scope, strict=False):
            return None
        call = candidate.via or candidate.node
        if not isinstance(call, cst.Call):
            return None
        chain = attribute_chain(func)
        keywords = {arg.keyword.value for arg in call.args if arg.keyword is not None}
        splat = any(arg.star == "**" for arg in call.args)
        for start in range(len(chain)):
            path = strip_wrappers(".".join(chain[start:]))
            shape = FALLBACK_SHAPES.get(path)
            if shape is None:
                continue
            if shape.keywords <= keywords or (splat and any(self.imports.imports_module(m) for m in shape.modules)):
                return f"{shape.provider} {path}"
            return None
        return None

    def _distinctive(self, func: cst.Attribute, scope: Scope) -> str | None:
        """A provider's request path, flagged on an unresolved receiver in a module importing it."""
        if self._bound_to(func.value, scope, strict=True):
            return None
        chain = attribute_chain(func)
        for start in range(len(chain)):
            path = strip_wrappers(".".join(chain[start:]))
            for table in self.catalogue.tables:
                if path in table.distinctive and any(self.imports.imports_module(m) for m in table.modules):
                    return table.api_name(path)
        return None


def record_module(text: str, path: str, importer: FileContext) -> ModuleAnalysis | None:
    """Another module of the project, recorded (not decided) for cross-module lookups.

    Only a module that mentions an LLM API, or a package ``__init__`` (re-exports), can
    export a client; others are not parsed.
    """
    if _TRIGGERS.search(text) is None and not path.endswith("__init__.py"):
        return None
    try:
        module = limits.parse_module(text)  # a module too deep for libcst raises, never crashes the process
    except (cst.ParserSyntaxError, SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    context = FileContext(path=path, source=text, imports=ImportTable(), options=importer.options)
    recorder = _Recorder(context)
    try:
        walk_module(module, [ImportCollector(context.imports), recorder])
    except (RecursionError, MemoryError):
        return None
    return recorder.analysis


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

    def visit_For(self, node: cst.For) -> None:
        if self._feeds:
            self.analysis.visit_For(node)

    def visit_Call(self, node: cst.Call) -> None:
        if self._feeds:
            self.analysis.visit_Call(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        self.analysis.finish()
        self.check(self.analysis)

    def check(self, analysis: ModuleAnalysis) -> None:
        """Report from the finished analysis."""
        raise NotImplementedError


class _Recorder(LlmAnalysisRule):
    """Feeds an analysis of another module; decides and reports nothing."""

    def leave_Module(self, original_node: cst.Module) -> None:
        """Nothing to decide: the importing module asks what it needs."""
