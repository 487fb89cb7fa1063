"""AF301: Playwright calls given more arguments than the page function receives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentfuse.lint.checker import check_source
from agentfuse.lint.fixer import fix_source
from agentfuse.lint_rules.playwright import PlaywrightEvaluateArity

DATA = Path(__file__).parent / "data" / "rules" / "playwright"
EXPECT = re.compile(r"#\s*expect:\s*AF301")
SYNC = "from playwright.sync_api import Page, sync_playwright\n"
ASYNC = "from playwright.async_api import Page, async_playwright\n"


def _lines(source: str) -> list[int]:
    return [f.line for f in check_source(source, [PlaywrightEvaluateArity]) if f.code == "AF301"]


POSITIVE = {
    "page-arrow": 'def f(page, a, b):\n    page.evaluate("(a, b) => a + b", a, b)\n',
    "self-page": 'class Bot:\n    def f(self, a, b):\n        self.page.evaluate("(a, b) => a + b", a, b)\n',
    "async-await": 'async def f(page, a, b):\n    await page.evaluate("(a, b) => a + b", a, b)\n',
    "three-extra": 'def f(page):\n    page.evaluate("(a, b, c) => a + b + c", 1, 2, 3)\n',
    "evaluate-handle": 'def f(page, a, b):\n    page.evaluate_handle("(a, b) => [a, b]", a, b)\n',
    "locator-evaluate": 'def f(page, x, y):\n    page.locator("#out").evaluate("(e, x) => x", x, y)\n',
    "locator-evaluate-all": 'def f(page, a, b):\n    page.locator("li").evaluate_all("(els, a) => a", a, b)\n',
    "get-by-role": 'async def f(page, a, b):\n    await page.get_by_role("button").evaluate("(e) => 1", a, b)\n',
    "frame": 'def f(frame, a, b):\n    frame.evaluate("(a, b) => a", a, b)\n',
    "main-frame-chain": 'def f(page, a, b):\n    page.main_frame.evaluate("(a, b) => a", a, b)\n',
    "query-selector-await": 'async def f(page, a, b):\n    h = await page.query_selector("x")\n'
    '    await h.evaluate("(e, a, b) => a", a, b)\n',
    "eval-on-selector": 'def f(page, a, b):\n    page.eval_on_selector("#x", "(el, a, b) => a", a, b)\n',
    "eval-on-selector-all": 'def f(page, a, b):\n    page.eval_on_selector_all("li", "(els, a) => a", a, b)\n',
    "wait-for-function-positional": 'def f(page, n):\n    page.wait_for_function("n => n > 1", n)\n',
    "wait-for-function-two": 'def f(page, a, b):\n    page.wait_for_function("(a, b) => a < b", a, b, timeout=10)\n',
    "annotated-tab": SYNC + 'def f(tab: Page, a, b):\n    tab.evaluate(SCRIPT, a, b)\n',
    "aliased-annotation": 'from playwright.async_api import Page as P\n'
    'async def f(tab: P, a, b):\n    await tab.evaluate(SCRIPT, a, b)\n',
    "string-annotation": 'def f(tab: "Page", a, b):\n    tab.evaluate(SCRIPT, a, b)\n',
    "optional-annotation": 'from typing import Optional\nfrom playwright.sync_api import Locator\n'
    'def f(item: Optional[Locator], a, b):\n    item.evaluate(SCRIPT, a, b)\n',
    "assigned-from-new-page": SYNC + 'def f(browser, a, b):\n    tab = browser.new_page()\n'
    '    tab.evaluate(SCRIPT, a, b)\n',
    "js-string-unknown-receiver": 'def f(ctx, a, b):\n    ctx.evaluate("function (a, b) { return a }", a, b)\n',
    "js-constant": 'JS = "(a, b) => document.title + a + b"\ndef f(tab, a, b):\n    tab.evaluate(JS, a, b)\n',
    "playwright-module-string": ASYNC + 'async def f(tab, a, b):\n    await tab.evaluate("a + b", a, b)\n',
    "playwright-module-handle": SYNC + 'def f(handle, a, b):\n    handle.evaluate(SCRIPT, a, b)\n',
    "patchright-fork": 'from patchright.sync_api import sync_playwright\n'
    'def f(tab, a, b):\n    tab.evaluate("a", a, b)\n',
    "pytest-fixture-page": 'def test_sum(page):\n    assert page.evaluate("(a, b) => a + b", 1, 2) == 3\n',
    "frames-subscript": 'def f(page, a, b):\n    page.frames[1].evaluate("x", a, b)\n',
    "worker-annotation": 'from playwright.sync_api import Worker\ndef f(w: Worker, a, b):\n    w.evaluate(S, a, b)\n',
    "jshandle-annotation": 'from playwright.async_api import JSHandle\n'
    'async def f(h: JSHandle, a, b):\n    await h.evaluate_handle(S, a, b)\n',
    "popup": 'def f(popup, a, b):\n    popup.evaluate("x", a, b)\n',
}

NEGATIVE = {
    "one-arg": 'def f(page, a):\n    page.evaluate("(a) => a", a)\n',
    "list-arg": 'def f(page, a, b):\n    page.evaluate("([a, b]) => a + b", [a, b])\n',
    "dict-arg": 'def f(page, a, b):\n    page.evaluate("({a, b}) => a + b", {"a": a, "b": b})\n',
    "arg-keyword": 'def f(page, a):\n    page.evaluate("(a) => a", arg=a)\n',
    "no-arg": 'async def f(page):\n    await page.evaluate("() => document.title")\n',
    "wait-for-function-keyword": 'def f(page, n):\n    page.wait_for_function("n => n", arg=n, polling=100)\n',
    "wait-for-function-alone": 'def f(page):\n    page.wait_for_function("() => window.ready")\n',
    "eval-on-selector-one-arg": 'def f(page, a):\n    page.eval_on_selector("#x", "(el, a) => a", a)\n',
    "locator-timeout-keyword": 'def f(page, a):\n    page.locator("x").evaluate("(e, a) => a", a, timeout=100)\n',
    "keras": 'import keras\nmodel = keras.Sequential()\nmodel.evaluate(x_test, y_test, 32)\n',
    "keras-in-playwright-module": SYNC + 'def f(model, x, y):\n    model.evaluate(x, y, 32, 1)\n',
    "tf-keras-chain": 'import tensorflow as tf\ntf.keras.Model().evaluate(x, y, 64)\n',
    "literal-eval": 'import ast\nast.literal_eval("(1, 2)")\n',
    "numexpr": 'import numexpr as ne\nne.evaluate("a * b", local_dict, global_dict)\n',
    "numexpr-module": 'import numexpr\nnumexpr.evaluate("a + b", ld, gd, None)\n',
    "pyppeteer": 'import pyppeteer\nasync def f(page, a, b):\n    await page.evaluate("(a, b) => a + b", a, b)\n',
    "nodriver": 'import nodriver as uc\nasync def f(page):\n    await page.evaluate("1 + 1", True, False)\n',
    "browser-use-actor": 'from browser_use import Browser\nasync def f(page, a, b):\n'
    '    await page.evaluate("(a, b) => a + b", a, b)\n',
    "splat": 'def f(page, args):\n    page.evaluate("(a, b) => a", *args)\n',
    "annotated-other-type": 'from sklearn.base import BaseEstimator\n'
    'def f(page: BaseEstimator, x, y):\n    page.evaluate("x", x, y)\n',
    "unknown-receiver-no-js": 'def f(scorer, a, b):\n    scorer.evaluate(a, b, "macro")\n',
    "page-inside-a-word": 'def f(webpage_classifier, x, y):\n    webpage_classifier.evaluate(x, y, "macro")\n',
    "plain-function": 'def evaluate(a, b, c):\n    return a\nevaluate(1, 2, 3)\n',
    "docstring-and-comment": 'def f(page, a):\n    """Do not call page.evaluate("(a, b) => a", a, b)."""\n'
    '    # page.evaluate("(a, b) => a", a, b)\n    return page.evaluate("a => a", a)\n',
    "string-mention": 'print("page.evaluate(\'(a, b) => a\', a, b)")\n',
}


@pytest.mark.parametrize("source", POSITIVE.values(), ids=POSITIVE.keys())
def test_too_many_arguments_are_flagged(source: str) -> None:
    assert _lines(source) == [len(source.splitlines())]


def test_pre_filter_lets_every_flagged_case_through() -> None:
    pattern = PlaywrightEvaluateArity.trigger_pattern()
    assert pattern is not None
    assert [name for name, source in POSITIVE.items() if not pattern.search(source)] == []


@pytest.mark.parametrize("source", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_one_argument_and_look_alikes_are_not_flagged(source: str) -> None:
    assert _lines(source) == []


def test_example_file_findings_are_exactly_the_marked_lines() -> None:
    source = (DATA / "scraper.py").read_text(encoding="utf-8")
    marked = [n for n, line in enumerate(source.splitlines(), 1) if EXPECT.search(line)]
    assert len(marked) >= 4
    assert _lines(source) == marked


def test_message_counts_the_arguments_and_names_the_fix() -> None:
    [finding] = check_source('def f(page):\n    page.evaluate("x", 1, 2, 3)\n', [PlaywrightEvaluateArity])
    assert finding.message == (
        "evaluate() takes one argument after the expression, got 3; "
        "pass one list or dict and destructure it in JS"
    )
    [finding] = check_source('def f(page):\n    page.wait_for_function("x", 1)\n', [PlaywrightEvaluateArity])
    assert "arg=" in finding.message


def _apply_fixes(source: str) -> str:
    fixed, _ = fix_source(source, [PlaywrightEvaluateArity], path="t.py", options={})
    return fixed


FIXES = {
    "arrow": (
        'def f(page, a, b):\n    page.evaluate("(a, b) => a + b", a, b)\n',
        'def f(page, a, b):\n    page.evaluate("([a, b]) => a + b", [a, b])\n',
    ),
    "function-single-quotes": (
        "def f(page):\n    page.evaluate('function (x, y) { return x * y }', 6, 7)\n",
        "def f(page):\n    page.evaluate('function ([x, y]) { return x * y }', [6, 7])\n",
    ),
    "async-arrow-triple-quoted": (
        'async def f(page, a, b):\n    await page.evaluate("""async (a, b) => {\n  return a;\n}""", a, b)\n',
        'async def f(page, a, b):\n    await page.evaluate("""async ([a, b]) => {\n  return a;\n}""", [a, b])\n',
    ),
    "eval-on-selector-keeps-element": (
        'def f(page, a, b):\n    page.eval_on_selector("#x", "(el, a, b) => el.value = a + b", a, b)\n',
        'def f(page, a, b):\n    page.eval_on_selector("#x", "(el, [a, b]) => el.value = a + b", [a, b])\n',
    ),
    "evaluate-all-keeps-elements": (
        'def f(rows, a, b):\n    rows.evaluate_all("(els, a, b) => els.slice(a, b)", a, b)\n',
        'def f(rows, a, b):\n    rows.evaluate_all("(els, [a, b]) => els.slice(a, b)", [a, b])\n',
    ),
    "wait-for-function-keyword": (
        'def f(page, n):\n    page.wait_for_function("n => window.count >= n", n, timeout=5)\n',
        'def f(page, n):\n    page.wait_for_function("n => window.count >= n", arg=n, timeout=5)\n',
    ),
    "wait-for-function-two": (
        'def f(page, a, b):\n    page.wait_for_function("(a, b) => a < b", a, b)\n',
        'def f(page, a, b):\n    page.wait_for_function("([a, b]) => a < b", arg=[a, b])\n',
    ),
    "multi-line-keeps-comment": (
        'def f(page, first, second):\n    page.evaluate(\n        "(a, b) => a + b",\n'
        '        first,  # the first\n        second,\n    )\n',
        'def f(page, first, second):\n    page.evaluate(\n        "([a, b]) => a + b",\n'
        '        [first,  # the first\n        second],\n    )\n',
    ),
}


@pytest.mark.parametrize(("before", "after"), FIXES.values(), ids=FIXES.keys())
def test_fix_destructures_one_list_idempotently_and_lints_clean(before: str, after: str) -> None:
    fixed, fixed_findings = fix_source(before, [PlaywrightEvaluateArity], path="t.py", options={})
    assert fixed == after
    assert [f.code for f in fixed_findings] == ["AF301"]
    assert _apply_fixes(fixed) == fixed
    assert _lines(fixed) == []


@pytest.mark.parametrize(
    "source",
    [
        'def f(page, a, b):\n    page.evaluate(SCRIPT, a, b)\n',
        'def f(page, a, b):\n    page.evaluate(f"(a, b) => {x}", a, b)\n',
        'def f(page, a, b):\n    page.evaluate("(a, b = 2) => a", a, b)\n',
        'def f(page, a, b, c):\n    page.evaluate("(a, b) => a", a, b, c)\n',
        'def f(page, a, b):\n    page.evaluate("({a}, b) => a", a, b)\n',
        'def f(page, n, m):\n    page.wait_for_function("n => n", n, arg=m)\n',
        'def f(page, a, b):\n    page.locator("li").evaluate_all("(a, b) => a", a, b)\n',
    ],
    ids=[
        "name",
        "f-string",
        "default-value",
        "count-mismatch",
        "destructured",
        "arg-given-twice",
        "evaluate-all-without-elements",
    ],
)
def test_no_fix_when_the_rewrite_is_not_certain(source: str) -> None:
    assert _lines(source) and _apply_fixes(source) == source
