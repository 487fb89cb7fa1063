"""A scraping agent. Lines carrying an expect comment must be flagged, no others.

The docstring may say page.evaluate("(a, b) => a + b", a, b) without being flagged.
"""

import asyncio

import keras
from playwright.async_api import Locator, Page, async_playwright

SUM = "(a, b) => a + b"


async def scroll_to(page: Page, x: int, y: int) -> None:
    # page.evaluate("window.scrollTo(x, y)", x, y) was the old, broken call
    await page.evaluate("([x, y]) => window.scrollTo(x, y)", [x, y])
    await page.evaluate("(x, y) => window.scrollTo(x, y)", x, y)  # expect: AF301


async def read_rows(table: Locator, first: int, last: int) -> list[str]:
    rows = await table.evaluate_all("(rows, range) => rows.map(r => r.innerText)", {"first": first})
    await table.evaluate_all(  # expect: AF301
        "(rows, first, last) => rows.slice(first, last)",
        first,
        last,
    )
    return rows


async def wait_ready(page: Page, count: int) -> None:
    await page.wait_for_function("n => document.querySelectorAll('li').length >= n", arg=count)
    await page.wait_for_function("n => document.querySelectorAll('li').length >= n", count)  # expect: AF301


async def main() -> None:
    model = keras.Sequential()
    model.evaluate([1.0], [0.0], 32)
    async with async_playwright() as driver:
        browser = await driver.chromium.launch()
        tab = await browser.new_page()
        print(await tab.evaluate(SUM, 1, 2))  # expect: AF301
        await tab.eval_on_selector("input", "(el, v) => el.value = v", "hello")
        await tab.eval_on_selector("input", "(el, a, b) => el.value = a + b", "x", "y")  # expect: AF301


if __name__ == "__main__":
    asyncio.run(main())
