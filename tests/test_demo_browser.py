"""The demo page in a real browser: Debian's headless Chromium driven by Selenium draws on the
canvas with pointer events and reads what the page shows. Never skipped: without the browser
the test fails and says what to install (.ci/run installs it on a fresh machine).

LENET5_DEMO_SCREENSHOT=path also saves the page's screenshot there (the README's image).
"""
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from lenet5.core.model import reference_checkpoint
from lenet5.tools.demo.classify import Classifier
from lenet5.tools.demo.samples import shipped
from lenet5.tools.demo.server import make_server

pytestmark = pytest.mark.slow  # a real browser: seconds per test

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1360,1300", "--force-device-scale-factor=1")
TIMEOUT = 20  # seconds to wait for the page


@pytest.fixture(scope="module")
def server():
    """The demo on a free port of 127.0.0.1, with the shipped digits behind 'random digit'."""
    classifier = Classifier.from_checkpoint(reference_checkpoint())
    srv = make_server(classifier, shipped(), port=0, seed=1)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@contextmanager
def chromium(tmp_path):
    """Headless Debian Chromium under Selenium, with a fresh profile; fails (not skips) when
    the browser is not installed. Selenium is given both executables, so selenium-manager
    never looks for or downloads a browser or driver."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the browser test needs Debian's Chromium: {', '.join(missing)} missing; "
                    "run `apt-get install -y chromium chromium-driver` (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, what):
    """Poll condition(driver) until truthy; fail naming `what` after TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; status line: "
                f"{driver.find_element('id', 'status').text!r}")


def open_page(driver, server):
    driver.get(server.url)
    wait_for(driver, lambda d: d.find_element("id", "checkpoint").text.startswith("lenet5-seed0"),
             "the page to load /api/info")
    # record when the page sends each classify request and when a stroke starts and ends
    driver.execute_script("""
        window.sent = []; window.stroke = [];
        for (const type of ['pointerdown', 'pointerup'])
          document.getElementById('pad').addEventListener(type, () => window.stroke.push(performance.now()));
        const original = window.fetch;
        window.fetch = (url, opts) => {
          if (String(url).includes('/api/classify')) window.sent.push(performance.now());
          return original(url, opts); };""")


def answers(driver):
    return int(driver.find_element("id", "app").get_attribute("data-answers"))


def shown(driver):
    """What the page shows: the digit, the ten distances, and per layer how many maps are painted
    with more than one colour (a blank or never-painted map has one)."""
    rows = driver.find_elements("css selector", "#bars .bar-row")
    best = [i for i, r in enumerate(rows) if "best" in r.get_attribute("class").split()]
    painted = driver.execute_script("""
        const out = {};
        for (const name of ['input', 'C1', 'S2', 'C3', 'S4', 'C5', 'F6']) {
          out[name] = [...document.querySelectorAll('#map-' + name + ' canvas.map')].map((c) => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, seen = new Set();
            for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
            return seen.size; });
        }
        return out;""")
    return {"digit": driver.find_element("id", "digit").text,
            "distances": [float(r.get_attribute("data-distance") or "nan") for r in rows],
            "best": best, "painted": painted,
            "verdict": driver.find_element("id", "verdict").text}


def draw_seven(driver):
    """A '7' in one stroke of real pointer events: across the top, then down to the left."""
    from selenium.webdriver.common.action_chains import ActionChains

    pad = driver.find_element("id", "pad")
    chain = ActionChains(driver, duration=60).move_to_element_with_offset(pad, -70, -85).click_and_hold()
    for dx, dy in [(35, 0)] * 4 + [(-10, 25)] * 7:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()


def test_drawing_shows_digit_distances_and_every_layer(server, tmp_path):
    with chromium(tmp_path) as browser:
        check_drawing(browser, server, tmp_path)


def check_drawing(browser, server, tmp_path):
    open_page(browser, server)
    draw_seven(browser)
    wait_for(browser, lambda d: d.find_element("id", "app").get_attribute("data-state") == "ready"
             and not d.execute_script("return window.sent.length === 0"), "an answer to the stroke")
    time.sleep(0.3)  # let the last (throttled) request of the stroke come back
    wait_for(browser, lambda d: d.find_element("id", "app").get_attribute("data-state") == "ready",
             "the last answer")
    page = shown(browser)
    png = tmp_path / "demo.png"
    assert browser.save_screenshot(str(png)) and png.stat().st_size > 20_000
    if os.environ.get("LENET5_DEMO_SCREENSHOT"):
        shutil.copyfile(png, os.environ["LENET5_DEMO_SCREENSHOT"])

    assert page["digit"] in list("0123456789")
    assert len(page["distances"]) == 10 and np.isfinite(page["distances"]).all()
    assert page["best"] == [int(page["digit"])] == [int(np.argmin(page["distances"]))]
    assert page["verdict"] in ("confident", "would be rejected")
    counts = {name: len(v) for name, v in page["painted"].items()}
    assert counts == {"input": 1, "C1": 6, "S2": 6, "C3": 16, "S4": 16, "C5": 1, "F6": 2}
    for name, colours in page["painted"].items():
        assert all(c > 1 for c in colours if name not in ("S4",)), (name, colours)
    assert sum(c > 1 for c in page["painted"]["S4"]) >= 12  # a 5x5 map may be uniform
    assert page["digit"] == "7", page  # a clear seven is read as one

    # the page throttles (requests >= 100 ms apart) and answers while the stroke goes on
    sent, (down, up) = browser.execute_script("return [window.sent, window.stroke]")
    assert (np.diff(sent) >= 95).all(), sent  # 100 ms, less timer jitter
    if up - down > 400:
        assert sum(t < up for t in sent) >= 2, (sent, down, up)



def test_random_button_loads_a_shipped_digit_and_the_page_names_it(server, tmp_path):
    with chromium(tmp_path) as browser:
        check_random_digits(browser, server)


def check_random_digits(browser, server):
    open_page(browser, server)
    labels = set()
    for _ in range(4):
        before = answers(browser)
        browser.find_element("id", "random").click()
        wait_for(browser, lambda d, before=before: answers(d) > before, "the answer to a shipped digit")
        label = browser.find_element("id", "source").get_attribute("data-label")
        assert browser.find_element("id", "digit").text == label
        labels.add(label)
    assert len(labels) >= 2  # the button picks different digits

    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "digit").text == "·"
    assert browser.find_element("id", "app").get_attribute("data-state") == "empty"
