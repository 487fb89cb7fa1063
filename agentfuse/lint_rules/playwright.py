"""Rule AF301: Playwright ``evaluate`` calls given more arguments than the JS function gets."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

import libcst as cst

from agentfuse.lint_rules._triggers import PLAYWRIGHT_TRIGGERS
from agentfuse.lint_rules.base import FileContext, Fix, Rule, dotted_name

_MAX_POSITIONAL = {
    "evaluate": 2,
    "evaluate_handle": 2,
    "evaluate_all": 2,
    "eval_on_selector": 3,
    "eval_on_selector_all": 3,
    "wait_for_function": 1,
}
"""Method -> most positional arguments Playwright's Python API accepts (``arg`` included).

``wait_for_function(expression, *, arg=None, ...)`` takes ``arg`` by keyword only."""

_PLAYWRIGHT_PACKAGES = (
    "playwright",
    "pytest_playwright",
    "patchright",
    "undetected_playwright",
    "rebrowser_playwright",
    "camoufox",
    "playwright_stealth",
)
"""Playwright and the forks and wrappers that keep its API."""

_OTHER_DRIVERS = ("pyppeteer", "nodriver", "zendriver", "pydoll", "browser_use", "mokr")
"""Browser drivers whose ``evaluate`` takes the JS function's arguments spread out
(browser_use's own CDP ``Page``/``Element`` since 0.7: ``evaluate(page_function, *args)``)."""

_PLAYWRIGHT_TYPES = frozenset(
    {"Page", "Frame", "Locator", "FrameLocator", "ElementHandle", "JSHandle", "Worker"}
)
_STRONG_WORDS = frozenset({"page", "pages", "frame", "frames", "locator", "locators", "popup"})
_STRONG_PREFIXES = ("get_by_", "query_selector", "wait_for_selector", "expect_popup")
"""A receiver chain naming one of these is a Playwright object (``page``, ``self._page``,
``page.locator("x")``, ``browser.new_page()``, ``main_frame``, ``get_by_role(...)``)."""
_WEAK_WORDS = frozenset(
    {"handle", "handles", "element", "elements", "el", "elem", "elm", "worker", "workers", "button", "btn"}
)
"""Plausible Playwright receivers, trusted only in a module that imports Playwright."""
_JS_LOOKING = re.compile(r"=>|^\s*(?:async\s+)?function\b|\bdocument\.|\bwindow\.")

_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_ARROW = re.compile(r"^(?P<head>\s*(?:async\s*)?\()(?P<params>[^()]*)(?P<tail>\)\s*=>)")
_FUNCTION = re.compile(
    r"^(?P<head>\s*(?:async\s+)?function\s*\*?\s*(?:[A-Za-z_$][\w$]*)?\s*\()(?P<params>[^()]*)(?P<tail>\))"
)
_STRING_TOKEN = re.compile(
    r"^(?P<prefix>[A-Za-z]*)(?P<quote>'''|\"\"\"|'|\")(?P<body>.*)(?P=quote)$", re.DOTALL
)


def _name_words(name: str) -> set[str]:
    """``new_page`` -> {new, page}; ``PageObject2`` -> {page, object}; ``webpage`` -> {webpage}."""
    return {word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)}


def _names_match(names: Iterable[str], words: frozenset[str], prefixes: tuple[str, ...] = ()) -> bool:
    return any(not words.isdisjoint(_name_words(name)) or name.startswith(prefixes) for name in names)


def _receiver_chain(node: cst.BaseExpression) -> tuple[list[str], str | None]:
    """Names along a receiver and the variable it starts from.

    ``(await self.page.locator("x")).first`` -> ([first, locator, page, self], "self").
    """
    names: list[str] = []
    while True:
        if isinstance(node, cst.Attribute):
            names.append(node.attr.value)
            node = node.value
        elif isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Subscript):
            node = node.value
        elif isinstance(node, cst.Await):
            node = node.expression
        elif isinstance(node, cst.Name):
            names.append(node.value)
            return names, node.value
        else:
            return names, None


def _annotation_names(annotation: cst.BaseExpression) -> list[str]:
    """Dotted names inside an annotation: ``Optional[Page]`` -> Optional, Page; ``"Page"`` -> Page."""
    if isinstance(annotation, cst.SimpleString):
        return _IDENTIFIER.findall(annotation.raw_value)
    names: list[str] = []
    stack: list[cst.CSTNode] = [annotation]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Name, cst.Attribute)):
            name = dotted_name(node)
            if name:
                names.append(name)
                continue
        if isinstance(node, cst.SimpleString):
            names.extend(_IDENTIFIER.findall(node.raw_value))
            continue
        stack.extend(node.children)
    return names


def _string_text(node: cst.BaseExpression) -> str | None:
    """The literal text of a string expression (f-string fields dropped), else None."""
    if isinstance(node, cst.SimpleString):
        return node.raw_value
    if isinstance(node, cst.ConcatenatedString):
        left, right = _string_text(node.left), _string_text(node.right)
        return (left or "") + (right or "")
    if isinstance(node, cst.FormattedString):
        return "".join(p.value for p in node.parts if isinstance(p, cst.FormattedStringText))
    return None


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A call of one of the methods with more positional arguments than Playwright takes."""

    call: cst.Call
    method: str
    positional: list[cst.Arg]

    @property
    def selector(self) -> bool:
        """``eval_on_selector[_all]``: the expression comes after a selector."""
        return self.method.startswith("eval_on_selector")

    @property
    def element_parameters(self) -> int:
        """Leading JS parameters Playwright fills itself: the element(s) for eval_on_selector*
        and Locator.evaluate_all. (``evaluate`` on a locator also passes the element first, but
        on a page it does not, so its fix never keeps a leading parameter.)"""
        return 1 if self.selector or self.method == "evaluate_all" else 0

    @property
    def expression(self) -> cst.Arg:
        return self.positional[1 if self.selector else 0]

    @property
    def extras(self) -> list[cst.Arg]:
        """The positional arguments meant for the JS function."""
        return self.positional[2 if self.selector else 1 :]


def _is_playwright_name(qualified: str) -> bool:
    return qualified.split(".")[0] in _PLAYWRIGHT_PACKAGES


def _positional(call: cst.Call) -> list[cst.Arg] | None:
    """The plain positional arguments; None when a ``*splat`` hides how many there are."""
    if any(arg.star == "*" for arg in call.args):
        return None
    return [arg for arg in call.args if arg.keyword is None and arg.star == ""]


class PlaywrightEvaluateArity(Rule):
    """Playwright passes exactly one argument to the page function; extra ones are a crash.

    ``page.evaluate("(a, b) => a + b", a, b)`` is how Puppeteer spells it, and how models
    trained on Puppeteer code write it, but Playwright's Python API takes one ``arg`` after
    the expression (``eval_on_selector``: after the selector and the expression), so the
    call raises ``TypeError`` in the middle of an unattended run. Pass one list or dict and
    destructure it in the JS function: ``page.evaluate("([a, b]) => a + b", [a, b])``.
    ``wait_for_function`` takes its argument by keyword only (``arg=``), so any second
    positional argument there is flagged too.

    Heuristic: a call of ``evaluate``, ``evaluate_handle``, ``evaluate_all``,
    ``wait_for_function``, ``eval_on_selector`` or ``eval_on_selector_all`` with too many
    positional arguments is flagged when its receiver is a Playwright object: the receiver
    chain names a page, frame or locator (``page``, ``self.page``, ``page.locator(...)``,
    ``get_by_*``, ``query_selector``...), or the receiver name is annotated with or assigned
    from one; or the expression is a JS-looking string (``=>``, ``function``, ``document.``);
    or the module imports Playwright (or a fork such as patchright) and the expression is a
    string or the receiver is named like an element handle or worker. Never flagged: a
    receiver that resolves through the imports to another library (``numexpr.evaluate``),
    a receiver annotated with a non-Playwright type, modules that use another browser
    driver whose ``evaluate`` takes spread arguments (pyppeteer, nodriver, zendriver, pydoll,
    browser_use's CDP actors, mokr) and not Playwright, ``arg=`` keywords, ``*args`` splats. Keras
    ``model.evaluate(x, y, batch)`` is not flagged: its receiver is not Playwright-like and ``x`` is not a string.
    The ``$eval``/``$$eval`` spellings do not exist in Python.

    Known misses: a Playwright object held under an unrelated name (``tab``, ``ctx``) in
    a module that does not import Playwright, passed a non-string expression; Playwright
    pages handed out by browser_use before 0.7 in a module that imports browser_use but
    not Playwright. Known noise: another library's ``page.evaluate`` that takes spread
    arguments, in a module importing none of the drivers above.
    """

    code = "AF301"
    message = (
        "evaluate() takes one argument after the expression; pass a list or dict and destructure it in JS"
    )
    triggers = PLAYWRIGHT_TRIGGERS

    VALID = (
        'from playwright.sync_api import Page\n\ndef total(page: Page, a: int, b: int) -> int:\n'
        '    return page.evaluate("([a, b]) => a + b", [a, b])\n',
        'async def title(page):\n    return await page.evaluate("() => document.title")\n',
        'def wait(page, n):\n    page.wait_for_function("n => window.count >= n", arg=n, timeout=5000)\n',
        'import keras\nmodel = keras.Sequential()\nloss = model.evaluate(x_test, y_test, 32)\n',
        'import ast\nvalue = ast.literal_eval("[1, 2, 3]")\n',
        'import numexpr as ne\nresult = ne.evaluate("a * b + c", local_vars, global_vars)\n',
        'def names(page, selector):\n'
        '    return page.eval_on_selector_all(selector, "(els, attr) => els.map(e => e[attr])", "id")\n',
        'import pyppeteer\n\nasync def run(page):\n    await page.evaluate("(a, b) => a + b", 1, 2)\n',
        'async def f(page, *args):\n    await page.evaluate("(a, b) => a + b", *args)\n',
        # A crawler's own adapter: evaluate(page, fn, arg) takes the page first.
        'from playwright.async_api import Page\n\nasync def scroll(self, page: Page, js, config):\n'
        '    return await self.adapter.evaluate(page, js, config)\n',
        # A browser agent's frame wrapper with a static evaluate(frame, expression, arg).
        'class SkyvernFrame:\n    @staticmethod\n    async def evaluate(frame, expression, arg=None):\n'
        '        return await frame.evaluate(expression, arg)\n\n'
        '    async def move(self, page, x, y):\n'
        '        await SkyvernFrame.evaluate(page, "(pos) => move(pos)", [x, y])\n',
    )
    INVALID = (
        'from playwright.sync_api import Page\n\ndef total(page: Page, a: int, b: int) -> int:\n'
        '    return page.evaluate("(a, b) => a + b", a, b)  # expect: AF301\n',
        'async def click_at(page, x, y):\n'
        '    await page.evaluate("function (x, y) { window.scrollTo(x, y) }", x, y)  # expect: AF301\n',
        'from playwright.async_api import async_playwright\n\nasync def f(tab, sel, a, b):\n'
        '    await tab.eval_on_selector(sel, "(el, a, b) => el.value = a + b", a, b)  # expect: AF301\n',
        'def count(page, n):\n    page.wait_for_function("n => window.count >= n", n)  # expect: AF301\n',
        'def text(page, x, y):\n    return page.locator("#out").evaluate("(e, x) => e.textContent + x", x, y)'
        '  # expect: AF301\n',
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._candidates: list[_Candidate] = []
        self._annotations: dict[str, list[cst.BaseExpression]] = {}
        self._assignments: dict[str, list[cst.BaseExpression]] = {}
        self._own_methods: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value in _MAX_POSITIONAL:
            self._own_methods.add(node.name.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        limit = _MAX_POSITIONAL.get(func.attr.value)
        if limit is None:
            return
        positional = _positional(node)
        if positional is not None and len(positional) > limit:
            self._candidates.append(_Candidate(node, func.attr.value, positional))

    def visit_Param(self, node: cst.Param) -> None:
        if node.annotation is not None:
            self._annotations.setdefault(node.name.value, []).append(node.annotation.annotation)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name):
            self._annotations.setdefault(node.target.value, []).append(node.annotation.annotation)
            if node.value is not None:
                self._assignments.setdefault(node.target.value, []).append(node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._assignments.setdefault(target.target.value, []).append(node.value)

    def leave_Module(self, original_node: cst.Module) -> None:
        if not self._candidates:
            return
        imports = self.context.imports
        uses_playwright = any(imports.imports_module(p) for p in _PLAYWRIGHT_PACKAGES)
        if not uses_playwright and any(imports.imports_module(d) for d in _OTHER_DRIVERS):
            return
        for candidate in self._candidates:
            if self._is_playwright_call(candidate, uses_playwright):
                self.report(candidate.call, _message(candidate), fix=_fix(candidate))

    # --- deciding -------------------------------------------------------------------------

    def _is_playwright_call(self, candidate: _Candidate, uses_playwright: bool) -> bool:
        func = candidate.call.func
        receiver = func.value if isinstance(func, cst.Attribute) else func
        if self._own_helper(candidate, receiver):
            return False
        resolved = self.context.imports.resolve(receiver)
        if resolved is not None and not _is_playwright_name(resolved):
            if not _names_match(resolved.split("."), _STRONG_WORDS, _STRONG_PREFIXES):
                return False
        typed = self._annotated_type(receiver)
        if typed is False:
            return False
        names = self._receiver_names(receiver)
        expression = candidate.expression.value
        strong = _names_match(names, _STRONG_WORDS, _STRONG_PREFIXES)
        if typed or strong or self._looks_like_js(expression):
            return True
        if not uses_playwright:
            return False
        return self._is_string(expression) or _names_match(names, _WEAK_WORDS)

    def _own_helper(self, candidate: _Candidate, receiver: cst.BaseExpression) -> bool:
        """The project's own ``evaluate(page, fn, arg)``: defined in this module and called on
        ``self``/``cls``, or handed a page or frame where Playwright takes the expression."""
        if isinstance(receiver, cst.Name) and receiver.value in {"self", "cls"}:
            if candidate.method in self._own_methods:
                return True
        first = candidate.positional[0].value
        if candidate.selector or self._is_string(first) or not isinstance(first, (cst.Name, cst.Attribute)):
            return False
        return _names_match(_receiver_chain(first)[0], _STRONG_WORDS, _STRONG_PREFIXES)

    def _annotated_type(self, receiver: cst.BaseExpression) -> bool | None:
        """True: annotated with a Playwright type; False: with another type; None: unknown."""
        if not isinstance(receiver, cst.Name):
            return None
        annotations = self._annotations.get(receiver.value)
        if not annotations:
            return None
        for annotation in annotations:
            for name in _annotation_names(annotation):
                qualified = self.context.imports.resolve_dotted(name) or name
                if qualified.rsplit(".", 1)[-1] in _PLAYWRIGHT_TYPES:
                    return True
        return False

    def _receiver_names(self, receiver: cst.BaseExpression) -> list[str]:
        """Names along the receiver chain, plus those of what its root name was assigned."""
        names, root = _receiver_chain(receiver)
        for value in self._assignments.get(root, []) if root else []:
            names.extend(_receiver_chain(value)[0])
        return names

    def _resolved_string(self, node: cst.BaseExpression) -> str | None:
        text = _string_text(node)
        if text is None and isinstance(node, cst.Name):
            values = self._assignments.get(node.value, [])
            texts = [t for t in (_string_text(v) for v in values) if t is not None]
            return texts[0] if texts else None
        return text

    def _is_string(self, node: cst.BaseExpression) -> bool:
        return self._resolved_string(node) is not None

    def _looks_like_js(self, node: cst.BaseExpression) -> bool:
        text = self._resolved_string(node)
        return text is not None and _JS_LOOKING.search(text) is not None


def _message(candidate: _Candidate) -> str:
    if candidate.method == "wait_for_function":
        return (
            "wait_for_function() takes its argument by keyword only; pass arg=<value> "
            "(one list or dict for several values, destructured in JS)"
        )
    before = "the selector and the expression" if candidate.selector else "the expression"
    return (
        f"{candidate.method}() takes one argument after {before}, got {len(candidate.extras)}; "
        "pass one list or dict and destructure it in JS"
    )


def _fix(candidate: _Candidate) -> Fix | None:
    """``("(a, b) => ...", a, b)`` -> ``("([a, b]) => ...", [a, b])`` when that is certain.

    ``wait_for_function`` gets the merged value as ``arg=``, its only accepted spelling.
    """
    call, extras, expression = candidate.call, candidate.extras, candidate.expression
    if any(arg.keyword is not None and arg.keyword.value == "arg" for arg in call.args):
        return None
    new_expression = expression
    if len(extras) > 1:
        rewritten = _wrap_parameters(expression.value, keep=candidate.element_parameters, count=len(extras))
        if rewritten is None:
            return None
        new_expression = expression.with_changes(value=rewritten)
        value: cst.BaseExpression = cst.List(
            [
                cst.Element(arg.value, comma=_list_comma(arg, last=index == len(extras) - 1))
                for index, arg in enumerate(extras)
            ]
        )
    else:
        value = extras[0].value
    merged = extras[-1].with_changes(value=value)
    if candidate.method == "wait_for_function":
        merged = merged.with_changes(
            keyword=cst.Name("arg"),
            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
        )
    args = list(call.args)
    first, last = _index(args, extras[0]), _index(args, extras[-1])
    args[_index(args, expression)] = new_expression
    return Fix(node=call, replacement=call.with_changes(args=args[:first] + [merged] + args[last + 1 :]))


def _index(args: list[cst.Arg], arg: cst.Arg) -> int:
    return next(i for i, candidate in enumerate(args) if candidate is arg)


def _list_comma(arg: cst.Arg, *, last: bool) -> cst.Comma | cst.MaybeSentinel:
    """Keep a multi-line argument's comma (and its comments) inside the new list."""
    if last or not isinstance(arg.comma, cst.Comma):
        return cst.MaybeSentinel.DEFAULT
    if isinstance(arg.comma.whitespace_after, cst.ParenthesizedWhitespace):
        return arg.comma
    return cst.MaybeSentinel.DEFAULT


def _wrap_parameters(node: cst.BaseExpression, *, keep: int, count: int) -> cst.SimpleString | None:
    """The JS function string with its last ``count`` parameters wrapped as ``[a, b]``.

    Only for a plain string literal holding an arrow function or ``function (...)`` whose
    parameters are bare names, exactly ``keep + count`` of them.
    """
    if not isinstance(node, cst.SimpleString):
        return None
    token = _STRING_TOKEN.match(node.value)
    if token is None:
        return None
    body = token.group("body")
    match = _ARROW.match(body) or _FUNCTION.match(body)
    if match is None:
        return None
    params = match.group("params")
    listed = params.rstrip()
    trailing = params[len(listed) :]
    pieces = listed.removesuffix(",").split(",")
    if len(pieces) != keep + count or not all(_IDENTIFIER.fullmatch(p.strip()) for p in pieces):
        return None
    wrapped = ",".join(pieces[keep:])
    leading = wrapped[: len(wrapped) - len(wrapped.lstrip())]
    new_params = ",".join([*pieces[:keep], f"{leading}[{wrapped.strip()}]"]) + trailing
    new_body = body[: match.start("params")] + new_params + body[match.end("params") :]
    quote = token.group("quote")
    return node.with_changes(value=f"{token.group('prefix')}{quote}{new_body}{quote}")


RULES: tuple[type[Rule], ...] = (PlaywrightEvaluateArity,)
