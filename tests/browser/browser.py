# SPDX-License-Identifier: LGPL-2.1-or-later
"""Headless Chromium (Debian's) over WebDriver (python3-selenium, chromium-driver), and what the browser test
and benchmark read from the gpupass page: its tables as the D-Bus lists give them, and the D-Bus side through
busctl (the bus of $DBUS_SYSTEM_BUS_ADDRESS, or a host's)."""
import json
import os
import subprocess
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = os.environ.get("GPUPASS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GPUPASS_CHROMEDRIVER", "/usr/bin/chromedriver")
CM = "/org/gpupass/cluster1"

checks = {"failed": 0}


def ok(what):
    print(f"ok - {what}", flush=True)


def fail(what):
    checks["failed"] += 1
    print(f"FAIL - {what}", flush=True)


def check(cond, what, detail=""):
    if cond:
        ok(what)
    else:
        fail(f"{what}: {detail}" if detail else what)
    return cond


def assert_eq(expected, actual, what):
    return check(expected == actual, what, f"expected {expected!r}, got {actual!r}")


def chromium(width=1600, height=1000):
    """A fresh headless Chromium (its own profile directory); as root it needs --no-sandbox."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=os.environ.get("TEST_DIR"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait(driver, what, predicate, timeout=30.0):
    """Polls predicate() until it is truthy (returns it) or the timeout (returns None): the test's own
    waiting, not the page's."""
    end = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # an element replaced while read: try again
            value = None
        if value:
            return value
        if time.monotonic() > end:
            return None
        time.sleep(0.02)


def open_page(driver, url, kind):
    """Loads the page and waits until it says its first render is complete (body[data-ready=KIND])."""
    driver.get(url)
    return wait(
        driver, "ready", lambda: driver.execute_script("return document.body.dataset.ready") == kind, 30
    )


def table(driver, card):
    """The rows of a table, in page order: one dict per row, field -> data-value when present, else the text."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr[data-key]')].map(tr => {
            const row = { key: tr.dataset.key, flagged: tr.classList.contains('gp-flagged') };
            for (const td of tr.querySelectorAll('td[data-field]'))
                row[td.dataset.field] = td.dataset.value !== undefined ? td.dataset.value : td.textContent;
            return row;
        });""",
        card,
    )


def row_button(driver, card, key, action):
    rows = driver.find_elements(
        By.CSS_SELECTOR, f'#{card} tr[data-key="{key}"] button[data-action="{action}"]'
    )
    return rows[0] if rows else None


def busctl_json(*args, address=None):
    bus = [f"--address={address}"] if address else ["--system"]
    out = subprocess.run(
        ["busctl", *bus, "--json=short", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)["data"] if out.strip() else None


def cluster(method, *args):
    """An aggregator Manager method; args: signature then values."""
    return busctl_json("call", "org.gpupass.cluster1", CM, "org.gpupass.cluster1.Manager", method, *args)


def browser_log(driver):
    return driver.get_log("browser")
