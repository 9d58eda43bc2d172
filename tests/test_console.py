"""The web console (`serve`'s /ui) in a real browser: Debian's chromium driven by
Playwright, against a real `serve` on 127.0.0.1 with the example fleet. Screenshots
of each view go to build/console-screenshots/ (test artifacts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.hostile import SCRIPT, environment
from tests.sshd import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "console-token-for-tests"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).parent.parent
SHOTS = ROOT / "build" / "console-screenshots"
HOSTILE_NAME = "<script>window.hacked=1</script><img src=x onerror=window.hacked=2>"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (scripts/test installs it)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("console")
    port = free_port()
    env = environment(home, ACODE_PLACEMENT_TOKEN=TOKEN, ACODE_PLACEMENT_DISCOVERY_ENABLED="false")
    # the example fleet, and a machine whose H100 is split into MIG instances
    fleet = home / "targets.yaml"
    document = yaml.safe_load((ROOT / "examples" / "targets.yaml").read_text())
    slices = [{"type": "nvidia", "model": "H100", "mig": m, "vramGb": v, "count": n}
              for m, v, n in (("3g.40gb", 40, 1), ("1g.10gb", 10, 2))]  # fmt: skip
    caps = {"cpu": 32, "memoryGb": 256, "gpus": slices}
    document["targets"].append(
        {"id": "mig-box", "type": "ssh", "host": "mig-box.invalid", "capabilities": caps}
    )
    fleet.write_text(yaml.safe_dump(document))
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), "--targets", str(fleet)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.errors = []  # type: ignore[attr-defined]
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def place(base: str, name: str, reserve: bool = False) -> dict[str, Any]:
    body = {"task": {"name": name, "requirements": {"cpu": 2, "memoryGb": 2}}, "reserve": reserve}
    answer = httpx.post(f"{base}/v1/placements", json=body, headers=HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_without_a_token_the_page_asks_for_one_and_shows_no_data(server: str, page: Any) -> None:
    page.goto(f"{server}/ui")
    page.wait_for_selector("#login:not([hidden])")
    assert page.locator("#targets-table tbody tr").count() == 0
    assert page.locator("#view-targets").is_hidden()
    shot(page, "token-prompt")
    page.fill("#token", "not-the-token")
    page.click("#token-form button")
    page.wait_for_selector("#login-error:has-text('refused')")
    assert page.locator("#targets-table tbody tr").count() == 0


def test_the_page_is_served_with_a_strict_policy_and_no_token_in_urls(server: str) -> None:
    answer = httpx.get(f"{server}/ui")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{server}/ui/../metrics").status_code in (401, 404)
    assert httpx.get(f"{server}/ui/index.py").status_code == 404


def test_the_targets_of_the_example_fleet(server: str, page: Any) -> None:
    page.goto(f"{server}/ui#token={TOKEN}")
    page.wait_for_selector("#targets-table tbody tr")
    assert TOKEN not in page.url  # the fragment is taken and cleared
    ids = page.locator("#targets-table tbody tr td:first-child").all_inner_texts()
    assert sorted(ids) == sorted(
        ["local", "build-box", "gpu-box", "mac-mini", "win-builder", "aws-m7g-2xlarge",
         "aws-c6i-4xlarge", "aws-g4dn-xlarge", "aws-g5-xlarge", "aws-g6e-xlarge",
         "aws-p4d-24xlarge", "mig-box"])  # fmt: skip
    shown = page.inner_text("#targets-table")
    assert "1x RTX 4090 24 GB" in shown
    assert "1x H100 40 GB (MIG 3g.40gb), 2x H100 10 GB (MIG 1g.10gb)" in shown
    page.fill("#target-filter", "a100")
    assert page.locator("#targets-table tbody tr").all_inner_texts()[0].startswith("aws-p4d")
    shot(page, "targets")
    page.fill("#target-filter", "")
    page.click("[data-sort=cpu]")
    page.click("[data-sort=cpu]")  # largest first
    assert page.locator("#targets-table tbody tr td:first-child").first.inner_text() == (
        "aws-p4d-24xlarge"
    )
    assert page.errors == []


def test_a_placement_appears_its_name_as_text_and_its_explanation_opens(
    server: str, page: Any
) -> None:
    placed = place(server, HOSTILE_NAME)
    page.goto(f"{server}/ui#token={TOKEN}")
    page.click("nav [data-view=decisions]")
    row = page.locator(f"#decisions-table tbody tr[data-request='{placed['requestId']}']")
    row.wait_for()
    assert HOSTILE_NAME in row.inner_text()  # shown as text
    assert page.evaluate("window.hacked") is None  # never run
    assert page.locator("#decisions-table img").count() == 0
    row.click()
    page.wait_for_selector("#explanation h3")
    text = page.inner_text("#explanation")
    assert "why: " in text and placed["target"]["id"] in text
    assert "✓ cpu" in text  # every candidate's matches
    shot(page, "decisions")
    assert page.errors == []


def test_what_if_explains_without_recording(server: str, page: Any) -> None:
    before = len(httpx.get(f"{server}/v1/placements?limit=1000", headers=HEADERS).json())
    page.goto(f"{server}/ui#token={TOKEN}")
    page.click("nav [data-view=whatif]")
    page.wait_for_selector(
        "#whatif-form select[name=strategy] option[value=performance]", state="attached"
    )
    page.fill("#whatif-form input[name=cpu]", "2")
    page.fill("#whatif-form input[name=gpuCount]", "1")
    page.fill("#whatif-form input[name=minVram]", "40")
    page.select_option("#whatif-form select[name=strategy]", "cost-optimized")
    page.click("#whatif-form button[type=submit]")
    page.wait_for_selector("#whatif-result h3")
    text = page.inner_text("#whatif-result")
    assert "aws-p4d-24xlarge" in text and "cost-optimized" in text
    assert "✗" in text  # the targets that cannot, with why
    assert "ruled out: " in text and "no GPU" in text  # the cause counts
    shot(page, "what-if")
    after = len(httpx.get(f"{server}/v1/placements?limit=1000", headers=HEADERS).json())
    assert after == before


def test_a_reservation_is_released_after_confirmation(server: str, page: Any) -> None:
    lease = place(server, "leased", reserve=True)["reservation"]
    page.goto(f"{server}/ui#token={TOKEN}")
    page.click("nav [data-view=reservations]")
    button = page.locator(f"button[data-release='{lease['id']}']")
    button.wait_for()
    shot(page, "reservations")
    page.once("dialog", lambda dialog: dialog.dismiss())  # said no: nothing happens
    button.click()
    active = httpx.get(f"{server}/v1/reservations", headers=HEADERS).json()
    assert lease["id"] in [r["id"] for r in active]
    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    page.wait_for_selector(f"#reservations-said:has-text('Released {lease['id']}')")
    active = httpx.get(f"{server}/v1/reservations", headers=HEADERS).json()
    assert lease["id"] not in [r["id"] for r in active]


def test_metrics_at_a_glance(server: str, page: Any) -> None:
    place(server, "counted")
    page.goto(f"{server}/ui#token={TOKEN}")
    page.click("nav [data-view=metrics]")
    page.wait_for_selector("#metrics-cards figure")
    text = page.inner_text("#metrics-cards")
    assert "Placements per minute" in text and "Decision latency" in text
    assert "ms on average" in text and "burst(s)" in text
    assert page.locator("#metrics-cards svg rect").count() >= 4
    shot(page, "metrics")


def test_a_phone_in_the_dark_with_a_keyboard(server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{server}/ui#token={TOKEN}")
        page.wait_for_selector("#targets-table tbody tr")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375 + 1  # the table scrolls in its box, not the page
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 27)"
        shot(page, "targets-phone-dark")
        page.focus("nav [data-view=decisions]")
        page.keyboard.press("Enter")
        page.wait_for_selector("#decisions-table tbody tr")
        page.keyboard.press("Tab")
        page.focus("#decisions-table tbody tr")
        page.keyboard.press("Enter")
        page.wait_for_selector("#explanation h3")
    finally:
        context.close()
    os.sync()
