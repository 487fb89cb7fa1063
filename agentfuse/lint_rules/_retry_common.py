"""What the retry rules (AF201-AF204) share: a bindings-reading rule base, the walk over a
loop body, and the names that mark time, exits, prompts and LLM calls."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from agentfuse.lint_rules.base import FileContext, Rule, dotted_name

LLM_MODULES = (
    "openai",
    "anthropic",
    "litellm",
    "google.genai",
    "google.generativeai",
    "mistralai",
    "cohere",
    "groq",
    "together",
    "ollama",
    "langchain_openai",
    "langchain_anthropic",
    "langchain_google_genai",
    "langchain_community.chat_models",
    "langchain.chat_models",
)
LLM_VERBS = frozenset(
    {
        "create",
        "parse",
        "stream",
        "completion",
        "acompletion",
        "text_completion",
        "generate_content",
        "generate_content_async",
        "generate_content_stream",
        "complete",
        "chat",
        "generate",
        "invoke",
        "ainvoke",
    }
)
TIME_FUNCTIONS = frozenset(
    {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns", "now", "utcnow"}
)
EXIT_FUNCTIONS = frozenset({"sys.exit", "os._exit", "os.abort"})
ARITHMETIC_CALLS = TIME_FUNCTIONS | {"min", "max", "int", "float", "abs", "round", "uniform", "random", "randint"}
PROMPT_MODULES = (
    "click",
    "typer",
    "getpass",
    "questionary",
    "prompt_toolkit",
    "rich.prompt",
    "inquirer",
    "InquirerPy",
)
CANCELLATION = frozenset({"CancelledError", "Cancelled"})
FAILURE_WORDS = (
    "Error",
    "Exception",
    "Timeout",
    "timeout",
    "Exceeded",
    "Exhausted",
    "Unavailable",
    "TooMany",
    "Fail",
    "Throttl",
    "Limit",
    "Refused",
    "Reset",
    "Overload",
)
EXIT_BUILTINS = frozenset({"exit", "quit"})


def last_segment(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def chained_callees(func: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """``func`` and the callee of every call it is chained on: ``questionary.text(...).ask``."""
    node: cst.BaseExpression = func
    while True:
        yield node
        while isinstance(node, cst.Attribute) and not isinstance(node.value, cst.Call):
            node = node.value
        if not (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Call)):
            return
        node = node.value.func


def walk(node: cst.CSTNode) -> Iterator[tuple[cst.CSTNode, int]]:
    """Nodes below ``node`` with their loop depth, not entering functions, classes or lambdas."""
    stack: list[tuple[cst.CSTNode, int]] = [(child, 0) for child in reversed(node.children)]
    while stack:
        current, depth = stack.pop()
        yield current, depth
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        inner = depth + 1 if isinstance(current, (cst.For, cst.While)) else depth
        stack.extend((child, inner) for child in reversed(current.children))


class BindingsRule(Rule):
    """A rule that reads what simple names were assigned in this module (flow-insensitive).

    ``STOP = stop_never`` or ``self.client = OpenAI()`` anywhere in the file counts; a name
    bound more than once may hold any of its values.
    """

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.bindings: dict[str, list[cst.BaseExpression]] = {}

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        name = dotted_name(target)
        if name is not None:
            self.bindings.setdefault(name, []).append(value)
