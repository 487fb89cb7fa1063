"""What an expression of one module evaluates to: a client, a request callable, or unknown.

The resolver reads what :class:`ModuleAnalysis` recorded (scopes, bindings, classes,
functions) and follows names through assignments, annotations, ``self.x`` in any method of
the class or its bases, properties, factory functions, ``functools.partial``, conditional
expressions, lazy SDK imports (``importlib.import_module("openai")``) and, when the run has a
:class:`~agentfuse.lint.project_index.ProjectIndex`, names imported from other modules of
the project. Everything is memoised per binding, and a binding being resolved counts as
unknown, so cycles end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import libcst as cst

from agentfuse.lint.project_index import ProjectIndex, project_index
from agentfuse.lint_rules._llm_catalogue import (
    MODEL_ONLY_METHODS,
    WRAPPER_SEGMENTS,
    Catalogue,
    ClientTable,
    string_list,
    tables_with_options,
)
from agentfuse.lint_rules._llm_model import (
    Binding,
    ClassInfo,
    FunctionInfo,
    Receiver,
    Scope,
    join_path,
    strip_wrappers,
    string_value,
)
from agentfuse.lint_rules.base import FileContext, dotted_name

if TYPE_CHECKING:
    from agentfuse.lint_rules._llm_analysis import ModuleAnalysis

MAX_RESOLVE_DEPTH = 12
PROPERTY_DECORATORS = frozenset({"property", "cached_property", "lazy_property", "cached", "lru_cache", "cache"})
"""Decorators after which ``self.name`` (no call) is what the method returns."""
PARTIAL_NAMES = frozenset({"functools.partial", "partial"})
PROJECT_KIND = "llm-analysis"


class Resolver:
    """Receiver and callable resolution over one module's recorded names."""

    def __init__(self, context: FileContext) -> None:
        self.context = context
        self.imports = context.imports
        self.catalogue: Catalogue = tables_with_options(context.options)
        self.guard_names = frozenset(string_list(context.options.get("guard-names")))
        self.project: ProjectIndex | None = project_index(context.options)
        self.module_scope = Scope(parent=None)
        self._classes: dict[str, list[ClassInfo]] = {}
        self._functions: dict[str, list[FunctionInfo]] = {}
        self._prefixes: dict[int, frozenset[str]] = {}
        self._receiver_memo: dict[int, Receiver | None] = {}
        self._callable_memo: dict[int, str | None] = {}
        self._exporting: set[tuple[str, str]] = set()
        self._sdk_roots = frozenset(m.split(".")[0] for t in self.catalogue.tables for m in t.modules) | frozenset(
            m.split(".")[0] for t in self.catalogue.tables for m in t.constructor_modules
        )

    # names and scopes

    def self_class(self, name: str, scope: Scope) -> ClassInfo | None:
        current: Scope | None = scope
        while current is not None:
            if current.self_name is not None:
                return current.cls if current.self_name == name else None
            current = current.parent
        return None

    def lookup(self, name: str, scope: Scope) -> Sequence[Binding]:
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
            return self.lookup(expr.value, scope)
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name):
            cls = self.self_class(expr.value.value, scope)
            if cls is not None:
                return self.attr_bindings(cls, expr.attr.value)
        return ()

    def class_chain(self, cls: ClassInfo) -> Iterator[ClassInfo]:
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

    def methods(self, cls: ClassInfo, name: str) -> list[FunctionInfo]:
        return [info for c in self.class_chain(cls) for info in c.methods.get(name, ())]

    def attr_bindings(self, cls: ClassInfo, name: str) -> list[Binding]:
        """``self.name``'s bindings in the class and its bases, or what a property returns."""
        found = [binding for c in self.class_chain(cls) for binding in c.attrs.get(name, ())]
        if found:
            return found
        return [r for info in self.methods(cls, name) if _is_property(info) for r in info.returns]

    def local_functions(self, func: cst.BaseExpression, scope: Scope) -> list[FunctionInfo]:
        """The functions of this module a call may reach: ``name()``, ``self.name()``, ``Cls.name()``."""
        if isinstance(func, cst.Name):
            return self._functions.get(func.value, [])
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            cls = self.self_class(func.value.value, scope)
            if cls is not None:
                return self.methods(cls, func.attr.value)
            return [m for c in self._classes.get(func.value.value, ()) for m in self.methods(c, func.attr.value)]
        return []

    def qualified(self, expr: cst.BaseExpression, scope: Scope) -> str | None:
        """The qualified name of a dotted expression: through imports, or a lazily imported SDK."""
        found = self.imports.resolve(expr)
        if found is not None:
            return found
        name = dotted_name(expr)
        if name is None:
            return None
        root, _, rest = name.partition(".")
        for binding in self.lookup(root, scope):
            module = self._lazy_module(binding.expr) if not binding.annotation else None
            if module is not None:
                return f"{module}.{rest}" if rest else module
        return None

    def _lazy_module(self, expr: cst.BaseExpression) -> str | None:
        """``importlib.import_module("openai")``, ``import_optional_dependency("openai")``...:
        a call whose first argument names an SDK module gives that module."""
        if not isinstance(expr, cst.Call) or not expr.args or expr.args[0].keyword is not None:
            return None
        text = string_value(expr.args[0].value)
        if not text or text.split(".")[0] not in self._sdk_roots:
            return None
        return text if all(part.isidentifier() for part in text.split(".")) else None

    # clients

    def prefixes_of(self, table: ClientTable) -> frozenset[str]:
        found = self._prefixes.get(id(table))
        if found is None:
            prefixes: set[str] = set()
            for path in (*table.methods, *table.factories):
                parts = path.split(".")
                prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
            found = frozenset(prefixes)
            self._prefixes[id(table)] = found
        return found

    def annotation_names(self, expr: cst.BaseExpression) -> list[str]:
        """Qualified names in a type annotation (``Optional[OpenAI]``, ``"OpenAI | None"``)."""
        if isinstance(expr, cst.Subscript):
            indexes = [element.slice.value for element in expr.slice if isinstance(element.slice, cst.Index)]
            return [name for index in indexes for name in self.annotation_names(index)]
        if isinstance(expr, cst.BinaryOperation):
            return self.annotation_names(expr.left) + self.annotation_names(expr.right)
        text = string_value(expr)
        if text is None:
            qualified = self.imports.resolve(expr)
            return [qualified] if qualified else []
        words = text.replace("[", " ").replace("]", " ").replace("|", " ").replace(",", " ").split()
        return [q for word in words if (q := self.imports.resolve_dotted(word.strip("'\""))) is not None]

    def constructed(self, qualified: str | None) -> Receiver | None:
        if qualified is None:
            return None
        for table in self.catalogue.tables:
            if table.builds_client(qualified):
                return table, ""
        return None

    def _service_client(self, call: cst.Call, scope: Scope) -> Receiver | None:
        """boto3 ``<session or module>.client("bedrock-runtime")``."""
        arg = next((a for a in call.args if a.keyword is None or a.keyword.value == "service_name"), None)
        service = self.constant_text(arg.value, scope) if arg is not None else None
        if service is None:
            return None
        for table in self.catalogue.tables:
            if table.service == service and any(self.imports.imports_module(m) for m in table.modules):
                return table, ""
        return None

    def constant_text(self, expr: cst.BaseExpression, scope: Scope) -> str | None:
        """A string literal, or a name bound only to one."""
        text = string_value(expr)
        if text is not None or not isinstance(expr, cst.Name):
            return text
        values = {string_value(b.expr) for b in self.lookup(expr.value, scope) if not b.annotation}
        return values.pop() if len(values) == 1 else None

    def receiver(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> Receiver | None:
        """The client (and path walked on it) that ``expr`` evaluates to, if known."""
        if depth > MAX_RESOLVE_DEPTH:
            return None
        if isinstance(expr, cst.Await):
            return self.receiver(expr.expression, scope, depth + 1)
        if isinstance(expr, cst.Call):
            return self._call_receiver(expr, scope, depth)
        if isinstance(expr, cst.IfExp):
            return self.receiver(expr.body, scope, depth + 1) or self.receiver(expr.orelse, scope, depth + 1)
        if isinstance(expr, cst.BooleanOperation):
            return self.receiver(expr.left, scope, depth + 1) or self.receiver(expr.right, scope, depth + 1)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            for side in (expr.left, expr.right):
                found = self.receiver(side, scope, depth + 1)
                if found is not None and found[0].provider == "langchain":
                    return found[0], ""
            return self._langchain() if self._starts_with_prompt(expr, scope, depth) else None
        bindings = self.bindings_of(expr, scope)
        if bindings:
            return next(filter(None, (self.binding_receiver(b, depth) for b in bindings)), None)
        if isinstance(expr, cst.Name):
            return self._name_receiver(expr, scope)
        if isinstance(expr, cst.Attribute):
            inner = self.receiver(expr.value, scope, depth + 1)
            if inner is None:
                return self._base_attr_receiver(expr, scope)
            table, path = inner
            attr = expr.attr.value
            if attr in WRAPPER_SEGMENTS:
                return inner
            full = join_path(path, attr)
            return (table, full) if full in self.prefixes_of(table) else None
        return None

    def _langchain(self) -> Receiver | None:
        table = next((t for t in self.catalogue.tables if t.provider == "langchain"), None)
        return (table, "") if table is not None else None

    def _starts_with_prompt(self, expr: cst.BaseExpression, scope: Scope, depth: int) -> bool:
        """An LCEL pipe that starts with a LangChain prompt template: ``prompt | llm | parser``
        sends the prompt to whatever model follows it."""
        rest: list[cst.BaseExpression] = []
        while isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            rest.append(expr.right)
            expr = expr.left
        if rest and all("Parser" in (self.qualified(r.func, scope) or "") for r in rest if isinstance(r, cst.Call)):
            if all(isinstance(r, cst.Call) for r in rest):
                return False  # prompt | parser: no model in the pipe
        if depth > MAX_RESOLVE_DEPTH:
            return False
        if isinstance(expr, cst.Call):
            qualified = self.qualified(expr.func, scope) or ""
            return qualified.startswith("langchain") and "PromptTemplate" in qualified
        bindings = self.bindings_of(expr, scope)
        return any(not b.annotation and self._starts_with_prompt(b.expr, b.scope, depth + 1) for b in bindings)

    def _name_receiver(self, expr: cst.Name, scope: Scope) -> Receiver | None:
        qualified = self.imports.resolve(expr)
        if qualified is None:
            return None
        for table in self.catalogue.tables:
            if table.module_is_client and qualified in table.modules:
                return table, ""
        return self._imported("value", qualified)

    def binding_receiver(self, binding: Binding, depth: int) -> Receiver | None:
        """Memoised per binding (a binding being resolved counts as unknown: no loops)."""
        key = id(binding)
        if key in self._receiver_memo:
            return self._receiver_memo[key]
        self._receiver_memo[key] = None
        if binding.annotation:
            found = next(filter(None, map(self.constructed, self.annotation_names(binding.expr))), None)
        else:
            found = self.receiver(binding.expr, binding.scope, depth + 1)
            if found is None and (module := self._lazy_module(binding.expr)) is not None:
                found = self._module_receiver(module)
        self._receiver_memo[key] = found
        return found

    def _module_receiver(self, module: str) -> Receiver | None:
        for table in self.catalogue.tables:
            if table.module_is_client and module in table.modules:
                return table, ""
        return None

    def _call_receiver(self, call: cst.Call, scope: Scope, depth: int) -> Receiver | None:
        func = call.func
        if not self.bindings_of(func, scope):
            qualified = self.qualified(func, scope)
            found = self.constructed(qualified)
            if found is not None:
                return found
            for maker in self.local_functions(func, scope):
                found = next(filter(None, (self.binding_receiver(r, depth) for r in maker.returns)), None)
                if found is not None:
                    return found
            if qualified is not None:
                found = self._imported("call", qualified)
                if found is not None:
                    return found
        if not isinstance(func, cst.Attribute):
            return None
        if func.attr.value == "client":
            found = self._service_client(call, scope)
            if found is not None:
                return found
        inner = self.receiver(func.value, scope, depth + 1)
        if inner is None:
            return self._langchain() if func.attr.value in MODEL_ONLY_METHODS else None
        table, path = inner
        attr = func.attr.value
        if not path and attr in table.passthrough:
            return inner
        factory = table.factories.get(join_path(path, attr))
        if factory is not None:
            return self.catalogue.by_name[factory], ""
        return None

    def _base_attr_receiver(self, expr: cst.Attribute, scope: Scope) -> Receiver | None:
        """``self.client`` set by a base class defined in another module of the project."""
        if self.project is None or not isinstance(expr.value, cst.Name):
            return None
        cls = self.self_class(expr.value.value, scope)
        if cls is None:
            return None
        for current in self.class_chain(cls):
            for base in current.bases:
                qualified = self.imports.resolve_dotted(base)
                if qualified is not None:
                    found = self._imported("attr", f"{qualified}.{expr.attr.value}")
                    if found is not None:
                        return found
        return None

    def _imported(self, kind: str, qualified: str) -> Receiver | None:
        """A name imported from another module of the project, resolved there."""
        if self.project is None or qualified.split(".")[0] in self._sdk_roots:
            return None
        located = self.project.locate(self.context.path, qualified)
        if located is None:
            return None
        path, name = located
        text = self.project.text(self.context.path, path)
        if text is None or not name:
            return None
        other = self.project.derived(PROJECT_KIND, path, lambda: _analyse_other(text, str(path), self.context))
        if other is None:
            return None
        return other.exported(kind, name)

    def exported(self, kind: str, name: str) -> Receiver | None:
        """What this module exports under ``name``: a value, a function's result, or
        ``Class.attr`` (an attribute its instances hold); followed through its imports.
        A name asked for again while it is being resolved (an import cycle, a module
        importing from its own name) is unknown."""
        if (kind, name) in self._exporting:
            return None
        self._exporting.add((kind, name))
        try:
            return self._exported(kind, name)
        finally:
            self._exporting.discard((kind, name))

    def _exported(self, kind: str, name: str) -> Receiver | None:
        head, _, attr = name.partition(".") if kind == "attr" else (name, "", "")
        if "." in head or (kind == "attr" and (not attr or "." in attr)):
            return None
        if kind == "attr":
            for cls in self._classes.get(head, ()):
                found = next(filter(None, (self.binding_receiver(b, 0) for b in self.attr_bindings(cls, attr))), None)
                if found is not None:
                    return found
        elif kind == "call":
            for maker in self._functions.get(head, ()):
                found = next(filter(None, (self.binding_receiver(r, 0) for r in maker.returns)), None)
                if found is not None:
                    return found
        else:
            return self.receiver(cst.Name(head), self.module_scope)
        qualified = self.imports.resolve_dotted(head)
        return self._imported(kind, f"{qualified}.{attr}" if attr else qualified) if qualified else None

    # request callables

    def callable_api(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> str | None:
        """The API a callable expression sends a request to when called (aliases, partials)."""
        if depth > MAX_RESOLVE_DEPTH:
            return None
        bindings = self.bindings_of(expr, scope)
        if bindings:
            return next(filter(None, (self._binding_callable(b, depth) for b in bindings)), None)
        if isinstance(expr, cst.IfExp):
            return self.callable_api(expr.body, scope, depth + 1) or self.callable_api(expr.orelse, scope, depth + 1)
        if isinstance(expr, cst.Call):
            if expr.args and self.imports.resolve(expr.func) in PARTIAL_NAMES | {"functools.partial"}:
                return self.callable_api(expr.args[0].value, scope, depth + 1)
            return None
        qualified = self.qualified(expr, scope)
        if qualified is not None:
            hit = self.catalogue.function(strip_wrappers(qualified))
            if hit is not None:
                return hit[0].api_name(hit[1])
        if isinstance(expr, cst.Attribute):
            inner = self.receiver(expr.value, scope, depth + 1)
            if inner is not None:
                table, path = inner
                full = strip_wrappers(join_path(path, expr.attr.value))
                return table.api_name(full) if full in table.methods else None
        return None

    def _binding_callable(self, binding: Binding, depth: int) -> str | None:
        key = id(binding)
        if key in self._callable_memo:
            return self._callable_memo[key]
        self._callable_memo[key] = None
        found = None if binding.annotation else self.callable_api(binding.expr, binding.scope, depth + 1)
        self._callable_memo[key] = found
        return found

    def is_other_value(self, binding: Binding) -> bool:
        """The binding is known not to be a client: a literal (annotations never decide this)."""
        return not binding.annotation and isinstance(
            binding.expr,
            (cst.BaseString, cst.Integer, cst.Float, cst.Dict, cst.List, cst.Tuple, cst.Set, cst.Comparison),
        )

    def built_by_other(self, binding: Binding) -> bool:
        """Built by an imported callable or a class of this module that is not a client."""
        value = binding.expr
        if binding.annotation or not isinstance(value, cst.Call):
            return self.is_other_value(binding)
        return self.imports.resolve(value.func) is not None or dotted_name(value.func) in self._classes


def _is_property(info: FunctionInfo) -> bool:
    return any((dotted_name(d) or "").rpartition(".")[2] in PROPERTY_DECORATORS for d in info.decorators) or any(
        isinstance(d, cst.Call) and (dotted_name(d.func) or "").rpartition(".")[2] in PROPERTY_DECORATORS
        for d in info.decorators
    )


def _analyse_other(text: str, path: str, importer: FileContext) -> ModuleAnalysis | None:
    """Record another module of the project (only when it mentions an LLM API at all)."""
    from agentfuse.lint_rules._llm_analysis import record_module

    return record_module(text, path, importer)
