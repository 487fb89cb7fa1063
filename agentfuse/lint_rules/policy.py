"""Rules AF102 (no policy for a module making LLM requests) and AF103 (invalid policy).

Which policy governs a module: the path given to ``enforce("...")`` (resolved against the
module's folder, then the working directory); else the nearest ``policy.yaml`` or
``agentfuse.yaml`` walking up from the module's folder to the repository root (the first
folder holding ``.git``); else ``[tool.agentfuse] policy``. Policies are validated by the
runtime's own loader (:func:`agentfuse.runtime.policy_loader.policy_issues`): one source of truth.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import libcst as cst

from agentfuse.lint_rules._llm_analysis import LlmAnalysisRule, ModuleAnalysis, Scope
from agentfuse.lint_rules._triggers import LLM_OPTIONS, POLICY_REQUIRED_TRIGGERS, POLICY_TRIGGERS
from agentfuse.lint.project_index import project_index
from agentfuse.lint_rules.base import FileContext, Finding, Rule, dotted_name
from agentfuse.runtime.errors import PolicyIssue

POLICY_FILE_NAMES = ("policy.yaml", "agentfuse.yaml")
FILE_MARKERS = frozenset({"__file__"})


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """A policy path as written: ``relative_to_module`` when built from ``__file__``."""

    text: str
    relative_to_module: bool = False


@dataclasses.dataclass
class PolicyResolution:
    """Where a module's policies are, and the places where one is missing."""

    found: list[tuple[cst.CSTNode, Path]] = dataclasses.field(default_factory=list)
    missing: list[tuple[cst.CSTNode, str]] = dataclasses.field(default_factory=list)


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def module_folder(context: FileContext) -> Path | None:
    """The folder of the checked file, or None for code with no real file (``<string>``)."""
    path = Path(context.path)
    return path.resolve().parent if path.is_file() else None


def _enclosing_folders(start: Path, probed: list[Path]) -> Iterator[Path]:
    """``start`` and its parents up to the repository root (a folder holding ``.git``)."""
    folder = start
    while True:
        yield folder
        probed.append(folder / ".git")
        if (folder / ".git").exists() or folder.parent == folder:
            return
        folder = folder.parent


def nearest_policy(start: Path, probed: list[Path] | None = None) -> Path | None:
    """The nearest ``policy.yaml``/``agentfuse.yaml`` from ``start`` up to the repository root;
    every path looked at is added to ``probed``."""
    probed = [] if probed is None else probed
    for folder in _enclosing_folders(start, probed):
        for name in POLICY_FILE_NAMES:
            candidate = folder / name
            probed.append(candidate)
            if candidate.is_file():
                return candidate
    return None


def _note_probes(context: FileContext, probed: list[Path]) -> None:
    """Tell the run's project index (the CLI's result cache reads it) which paths the
    module's policy findings depend on, found or not."""
    index = project_index(context.options)
    if index is not None:
        for path in probed:
            index.note(context.path, path)


class _PolicyArgument:
    """Reads the policy path out of an ``enforce(...)`` call, when it is static."""

    def __init__(self, analysis: ModuleAnalysis) -> None:
        self.analysis = analysis

    def of(self, call: cst.Call, scope: Scope) -> PolicySpec | None:
        arg = next((a for a in call.args if a.keyword is None and not a.star), None)
        arg = arg or next((a for a in call.args if a.keyword is not None and a.keyword.value == "policy"), None)
        return self.evaluate(arg.value, scope) if arg is not None else None

    def evaluate(self, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> PolicySpec | None:
        """A static path expression: a literal, a name bound to one, ``Path(...)``, ``/``, joins."""
        if depth > 4:
            return None
        if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
            value = expr.evaluated_value
            return PolicySpec(value) if isinstance(value, str) else None
        if self._is_module_folder(expr):
            return PolicySpec("", relative_to_module=True)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Divide):
            return self._join(expr.left, expr.right, scope, depth)
        if isinstance(expr, cst.Call):
            qualified = self.analysis.imports.resolve(expr.func)
            positional = [a.value for a in expr.args if a.keyword is None and not a.star]
            func = expr.func
            if isinstance(func, cst.Attribute) and len(positional) == 1:
                if func.attr.value == "with_name" and self._is_file_path(func.value):
                    name = self.evaluate(positional[0], scope, depth + 1)
                    return PolicySpec(name.text, relative_to_module=True) if name is not None else None
                if func.attr.value == "joinpath":
                    return self._join(func.value, positional[0], scope, depth)
            if qualified in {"pathlib.Path", "pathlib.PurePath"} and len(positional) == 1:
                return self.evaluate(positional[0], scope, depth + 1)
            if qualified == "os.path.join" and len(positional) == 2:
                return self._join(positional[0], positional[1], scope, depth)
            return None
        for binding in self.analysis.bindings_of(expr, scope):
            if not binding.annotation and (found := self.evaluate(binding.expr, binding.scope, depth + 1)):
                return found
        return None

    def _join(self, left: cst.BaseExpression, right: cst.BaseExpression, scope: Scope, depth: int) -> PolicySpec | None:
        head = self.evaluate(left, scope, depth + 1)
        tail = self.evaluate(right, scope, depth + 1)
        if head is None or tail is None or tail.relative_to_module:
            return None
        return PolicySpec(os.path.join(head.text, tail.text), head.relative_to_module)

    def _is_file_path(self, expr: cst.BaseExpression) -> bool:
        """``Path(__file__)``, optionally ``.resolve()``/``.absolute()``."""
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            if expr.func.attr.value in {"resolve", "absolute"} and not expr.args:
                expr = expr.func.value
        return isinstance(expr, cst.Call) and self._is_path_of_file(expr)

    def _is_module_folder(self, expr: cst.BaseExpression) -> bool:
        """``Path(__file__).parent``, ``Path(__file__).resolve().parent``, ``os.path.dirname(__file__)``."""
        if isinstance(expr, cst.Attribute) and expr.attr.value == "parent":
            return self._is_file_path(expr.value)
        if isinstance(expr, cst.Call) and len(expr.args) == 1:
            qualified = self.analysis.imports.resolve(expr.func)
            if qualified == "os.path.dirname":
                value = expr.args[0].value
                if isinstance(value, cst.Call) and self.analysis.imports.resolve(value.func) == "os.path.abspath":
                    value = value.args[0].value if value.args else value
                return dotted_name(value) in FILE_MARKERS
        return False

    def _is_path_of_file(self, call: cst.Call) -> bool:
        qualified = self.analysis.imports.resolve(call.func)
        return (
            qualified in {"pathlib.Path", "pathlib.PurePath"}
            and len(call.args) == 1
            and dotted_name(call.args[0].value) in FILE_MARKERS
        )


def resolve_policies(analysis: ModuleAnalysis, context: FileContext) -> PolicyResolution:
    """The policy (or policies) governing the module, and where one is missing."""
    resolution = PolicyResolution()
    if not analysis.llm_calls and not analysis.enforce_calls:
        return resolution
    folder = module_folder(context)
    arguments = _PolicyArgument(analysis)
    probed: list[Path] = []
    try:
        _resolve(analysis, context, folder, arguments, resolution, probed)
    finally:
        _note_probes(context, probed)
    return resolution


def _resolve(
    analysis: ModuleAnalysis,
    context: FileContext,
    folder: Path | None,
    arguments: _PolicyArgument,
    resolution: PolicyResolution,
    probed: list[Path],
) -> None:
    for call in analysis.enforce_calls:
        spec = arguments.of(call.node, call.scope)
        if spec is None:
            continue
        places = _places(spec, folder)
        probed.extend(place / spec.text for place in places)
        found = next((place / spec.text for place in places if (place / spec.text).exists()), None)
        if found is not None:
            resolution.found.append((call.node, found))
        elif places:
            looked = " and ".join(shown_path(place) or "." for place in places)
            resolution.missing.append(
                (
                    call.node,
                    f"enforce() is given the policy '{spec.text}', which does not exist (looked in {looked});"
                    f" create it with `agentfuse init --path {spec.text}` or fix the path",
                )
            )
    if analysis.enforce_calls or not analysis.llm_calls:
        return
    first = analysis.llm_calls[0]
    found = nearest_policy(folder, probed) if folder is not None else None
    configured = context.options.get("policy")
    if found is None and isinstance(configured, str) and configured:
        found = Path(configured)
        probed.append(found)
        if not found.exists():
            resolution.missing.append(
                (
                    first.node,
                    f"the policy configured in [tool.agentfuse] policy, '{configured}', does not exist;"
                    " create it with `agentfuse init` or fix the setting",
                )
            )
            return
    if found is not None:
        resolution.found.append((first.node, found))
    else:
        where = f" from {shown_path(folder) or '.'} up to the repository root" if folder is not None else ""
        resolution.missing.append(
            (
                first.node,
                f"{first.api} is made by a module with no policy: no enforce(\"...\") path, no"
                f" {' or '.join(POLICY_FILE_NAMES)}{where}, no [tool.agentfuse] policy;"
                " create one with `agentfuse init` and pass it to `enforce()`",
            )
        )


def module_policies(analysis: ModuleAnalysis, context: FileContext) -> PolicyResolution:
    """:func:`resolve_policies`, once per file check (AF102 and AF103 both need it)."""
    found = analysis.derived.get("policies")
    if not isinstance(found, PolicyResolution):
        found = analysis.derived["policies"] = resolve_policies(analysis, context)
    return found


def _places(spec: PolicySpec, folder: Path | None) -> list[Path]:
    """Folders a policy path is resolved against, in order."""
    if os.path.isabs(spec.text):
        return [Path("/")]
    if spec.relative_to_module:
        return [folder] if folder is not None else []
    places = [folder] if folder is not None else []
    cwd = Path.cwd()
    return places + [cwd] if cwd not in places else places


class MissingPolicy(LlmAnalysisRule):
    """An agent with no policy has no budget, no breaker and no fail-fast: the guard cannot
    start, and a module that never calls ``enforce()`` spends with no ceiling at all.

    Heuristic: the module makes an LLM request (the AF101 catalogue) or calls
    ``agentfuse.enforce``. The policy is the static path given to ``enforce()`` (a literal, a
    name bound to one, ``Path(__file__).parent / "policy.yaml"``, ``.with_name(...)``,
    ``.joinpath(...)``, ``os.path.join``), resolved
    against the module's folder then the working directory; without ``enforce()``, the
    nearest ``policy.yaml``/``agentfuse.yaml`` up to the repository root, else
    ``[tool.agentfuse] policy`` (option ``policy``). One finding, at each ``enforce()`` whose
    path does not exist, or at the first LLM request. Code with no real file (``<string>``)
    skips the folder walk. Known misses: a policy path computed at run time (environment
    variables, function results) is not checked.
    """

    code = "AF102"
    message = "this module makes LLM requests with no policy; create one with `agentfuse init`, pass it to `enforce()`"
    triggers = POLICY_TRIGGERS
    required_triggers = POLICY_REQUIRED_TRIGGERS
    trigger_word_options = LLM_OPTIONS

    VALID = (
        """
import json

def load(path):
    return json.loads(open(path).read())
""",
        """
from agentfuse import enforce

def make_guard(path):
    return enforce(path)
""",
        """
import anthropic

client = anthropic.Anthropic()
client.messages.count_tokens(model="claude", messages=[])
""",
    )
    INVALID = (
        """
import agentfuse

guard = agentfuse.enforce("no/such/folder/policy.yaml")  # expect: AF102
""",
        """
from openai import OpenAI

client = OpenAI()
client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF102
client.embeddings.create(model="text-embedding-3-small", input="x")
""",
        """
from pathlib import Path
from agentfuse import enforce

POLICY = Path("no/such/agent.yaml")
guard = enforce(POLICY)  # expect: AF102
""",
    )

    def check(self, analysis: ModuleAnalysis) -> None:
        for node, message in module_policies(analysis, self.context).missing:
            self.report(node, message)


class InvalidPolicy(LlmAnalysisRule):
    """A policy that does not load stops the agent at start-up, and one without ``budget``,
    ``breaker`` or ``fail_fast`` leaves a failure mode without a ceiling. Reporting it at lint
    time, with the loader's own ``file:line`` message, catches it before the agent ships.

    Heuristic: the policy found as for AF102 is checked with the runtime loader
    (``policy_issues``); a ``${VAR}`` whose VAR is unset here is a placeholder filled at run time
    (CI rarely holds the agent's secrets), not a problem. One finding
    at the ``enforce()`` call or the first LLM request, naming the first problem and how many
    more there are. ``agentfuse lint policy.yaml`` reports every problem on the YAML file itself.
    """

    code = "AF103"
    message = "the policy of this module is invalid or lacks budget, breaker or fail_fast; run `agentfuse check-policy`"
    triggers = POLICY_TRIGGERS
    required_triggers = POLICY_REQUIRED_TRIGGERS
    trigger_word_options = LLM_OPTIONS

    VALID = (
        """
def no_agent_here():
    return 42
""",
        """
from agentfuse import enforce

guard = enforce(policy_path_from_environment())
""",
        """
from agentfuse import enforce

guard = enforce("no/such/folder/policy.yaml")
""",
    )
    INVALID = (
        """
from agentfuse import enforce

guard = enforce("/")  # expect: AF103
""",
        """
import os
import agentfuse

guard = agentfuse.enforce(os.path.join("/", "."))  # expect: AF103
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._issues: dict[Path, list[PolicyIssue]] = {}

    def check(self, analysis: ModuleAnalysis) -> None:
        for node, path in module_policies(analysis, self.context).found:
            issues = self._issues.get(path)
            if issues is None:
                issues = self._issues[path] = _policy_issues(shown_path(path))
            if issues:
                more = len(issues) - 1
                tail = f" (and {more} more; run `agentfuse check-policy {shown_path(path)}`)" if more else ""
                self.report(node, f"invalid policy: {issues[0]}{tail}")


def check_policy_file(path: str) -> list[Finding]:
    """AF103 findings on a policy file itself, at the YAML line/column of each problem.

    The engine calls this for ``agentfuse lint policy.yaml`` and the ``agentfuse-policy``
    pre-commit hook.
    """
    findings = []
    for issue in _policy_issues(path):
        message = f"{issue.message}. Fix: {issue.fix}" if issue.fix else issue.message
        findings.append(Finding(path, issue.line, issue.col, issue.line, issue.col + 1, InvalidPolicy.code, message))
    return sorted(findings)


RULES: tuple[type[Rule], ...] = (MissingPolicy, InvalidPolicy)


def _policy_issues(path: str) -> list[PolicyIssue]:
    """The runtime loader's verdict on a policy; loaded only when a policy is found, so a
    lint run that meets none never imports the runtime."""
    from agentfuse.runtime.policy_loader import policy_issues

    return policy_issues(path, unset_ok=True)
