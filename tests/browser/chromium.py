"""Browser tests: Debian's chromium, driven through its own chromedriver by selenium.

Never a downloaded browser or driver: the paths are fixed, and selenium's manager (which
would fetch one) is told to stay offline. Headless, with --no-sandbox because the tests run
as root (chromium's sandbox refuses root). Performance logging is on, so a test can read
every request the page made (``requests``). Shared by the tests and the page-load benchmark.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "browser",
    "load_ms",
    "missing",
    "print_pdf",
    "requests",
    "screenshot",
]


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless chromium session; quit on exit whatever happened."""
    # Selenium's manager would download a driver it thinks missing: never.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        # Nothing of chromium's own in the network log: no update checks, no field trials.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def requests(driver: Any) -> list[str]:
    """The URL of every request the pages made since the last call (Network.requestWillBeSent
    in chromium's performance log, which reading empties)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def load_ms(driver: Any) -> float:
    """The page's load time by the browser's own navigation timing: loadEventEnd - startTime."""
    value = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n.loadEventEnd - n.startTime;"
    )
    return float(value)


def print_pdf(driver: Any) -> bytes:
    """The current page printed to PDF by chromium (Page.printToPDF), as a browser prints."""
    result = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
    return base64.b64decode(result["data"])


def screenshot(driver: Any, directory: str | None, name: str) -> Path | None:
    """A PNG of the whole page into ``directory`` (none: nothing), named ``name``.png."""
    if not directory:
        return None
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    size = driver.get_window_size()
    driver.set_window_size(max(size["width"], width), min(max(size["height"], height), 4000))
    try:
        tmp = path.with_suffix(".tmp.png")
        driver.save_screenshot(str(tmp))
        shutil.move(tmp, path)
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path
