"""The dashboard in a real headless Chromium, against the real ASGI server and a real
worker process, with the fake model server: pages change as the worker publishes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from runs.models import Run
from tests.builds import APPROVE, bench_run, block, config, phase
from tests.fake_llm import Reply
from tests.support import ROOT, VENV_BIN, database_url, free_port
from tests.test_engine_runs import QUANTITY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"]),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian's chromium is not installed (make test installs it)",
    ),
]


class Product:
    """`autopack serve` and `autopack worker`, as separate processes."""

    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.processes = []
        for name, args in (("web", ["serve", "--port", str(port)]), ("worker", ["worker"])):
            log = (logs / f"{name}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    [str(VENV_BIN / "autopack"), *args],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the web server did not come up")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def product(engine, fake_llm, tmp_path):
    governance = tmp_path / "governance.yaml"
    governance.write_text(
        json.dumps({"protected_paths": ["Dockerfile*"], "approval_timeout_minutes": 60})
    )
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        AUTOPACK_HOME=str(tmp_path / "home"),
        AUTOPACK_MODELS=str(engine.AUTOPACK_MODELS),
        AUTOPACK_GOVERNANCE=str(governance),
        DJANGO_SETTINGS_MODULE="autopack_site.settings",
        AUTOPACK_LLM_MAX_RETRIES="1",
    )
    get_user_model().objects.create_superuser("admin", password="admin-password-1")
    get_user_model().objects.create_user("bob", password="bob-password-1", is_staff=True)
    running = Product(env, free_port(), tmp_path)
    yield running
    running.stop()


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own database
    # calls are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


def log_in(browser, product: Product, username: str, password: str, width: int = 1280):
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(product.base + "/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(product.base + "/")
    return page


def create_run(page, product: Product, data: dict) -> None:
    page.goto(product.base + "/runs/new/")
    page.fill("#config", json.dumps(data, indent=2))
    page.click("text=Create run")
    page.wait_for_url(f"{product.base}/runs/{data['run_id']}/")
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads


def test_a_run_created_in_the_form_updates_live_until_it_finishes(product, browser, fake_llm, repo):
    fake_llm.script(
        "builder",
        Reply(QUANTITY, delay=1.5),
        Reply(
            block(
                "inventory/report.py",
                "",
                "def low_stock(s, t):\n    return sorted(i for i, q in s.items() if q < t)\n",
            ),
            delay=1.5,
        ),
    )
    fake_llm.script("auditor", APPROVE, APPROVE)
    page = log_in(browser, product, "admin", "admin-password-1")

    create_run(
        page,
        product,
        config(
            repo,
            [phase("count", 0, ["inventory/"])],
            [phase("report", 0, ["inventory/report.py"])],
            run_id="live-build",
        ),
    )
    page.wait_for_selector("#live-status.on", timeout=15000)
    page.wait_for_selector('[data-phase-state="count"]:has-text("Executing")', timeout=30000)
    page.wait_for_selector('[data-phase-state="count"]:has-text("Complete")', timeout=60000)
    page.wait_for_selector('#run-state:has-text("Done Success")', timeout=60000)

    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#event-log li").count() > 10
    assert page.locator(".timeline .bar.PASSED").count() == 2
    page.screenshot(path=str(ARTIFACTS / "run-detail.png"), full_page=True)
    page.goto(product.base + "/")
    assert "live-build" in page.locator("#run-rows").inner_text()
    page.screenshot(path=str(ARTIFACTS / "runs-list.png"), full_page=True)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "[document.activeElement.textContent, "
        "getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["Runs", "solid"]  # the first link, with a visible focus ring
    phone = log_in(browser, product, "admin", "admin-password-1", width=390)
    phone.screenshot(path=str(ARTIFACTS / "runs-list-phone.png"), full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    assert Run.objects.get(run_id="live-build").state == "DONE_SUCCESS"


def test_approving_in_the_governance_queue_lets_the_run_continue(product, browser, fake_llm, repo):
    dockerfile = block("Dockerfile", "", "FROM python:3.11-slim\n")
    fake_llm.script("builder", "A container image for the service.\n\n" + dockerfile + QUANTITY)
    fake_llm.script("auditor", APPROVE)
    admin = log_in(browser, product, "admin", "admin-password-1")
    create_run(
        admin,
        product,
        config(repo, [phase("ship", 0, ["Dockerfile", "inventory/"])], run_id="needs-approval"),
    )
    admin.wait_for_selector('#run-state:has-text("Awaiting Approval")', timeout=60000)

    bob = log_in(browser, product, "bob", "bob-password-1")
    bob.goto(product.base + "/governance/")
    assert "FROM python:3.11-slim" in bob.content()
    assert bob.locator("button[name=approve]").count() == 0

    queue = log_in(browser, product, "admin", "admin-password-1")
    queue.goto(product.base + "/governance/")
    queue.screenshot(path=str(ARTIFACTS / "governance-queue.png"), full_page=True)
    queue.click("button[name=approve]")
    assert "approved" in queue.locator("[role=status]").inner_text()

    admin.wait_for_selector('#run-state:has-text("Done Success")', timeout=60000)
    assert admin.evaluate("window.__sameDocument") is True


def test_a_benchmark_page_draws_its_charts_with_nothing_from_elsewhere(product, browser):
    bench = bench_run("browser-bench", suite="polyglot-benchmark", model="scripted")
    for task_id, passed_try in (("python/bowling", 1), ("python/grep", 2), ("go/bowling", None)):
        bench.tasks.create(
            task_id=task_id,
            language=task_id.split("/")[0],
            status="passed" if passed_try else "failed",
            passed_try=passed_try,
            tries_used=passed_try or 2,
        )
    page = log_in(browser, product, "admin", "admin-password-1")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(product.base + "/bench/browser-bench/")

    charts = page.locator("figure.bench-chart svg")
    assert charts.count() == 3  # go, python, and all together
    for index in range(3):
        box = charts.nth(index).bounding_box()
        assert box["width"] > 20 and box["height"] > 50
    python = page.locator('figure.bench-chart svg[aria-label^="python"]')
    assert [python.locator("rect").nth(i).get_attribute("height") for i in range(2)] == [
        "50.0",
        "100.0",
    ]
    assert all(url.startswith(product.base) for url in requested), requested
    page.screenshot(path=str(ARTIFACTS / "bench-detail.png"), full_page=True)
    phone = log_in(browser, product, "admin", "admin-password-1", width=390)
    phone.goto(product.base + "/bench/browser-bench/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


NOTES_PLAN = """\
# Count the stock

- Add quantity_of below remove_item [paths:inventory/] [deliverables:inventory/stock.py]
  - quantity_of returns 0 for an item that is not in stock
"""


def test_a_plan_drafted_from_notes_is_reviewed_in_the_markdown_tab_then_built(
    product, browser, fake_llm, repo
):
    fake_llm.script("planner", f"```markdown\n{NOTES_PLAN}```\n")
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    page = log_in(browser, product, "admin", "admin-password-1")
    page.goto(product.base + "/runs/new/?tab=markdown")
    page.fill("#markdown", "Let us ask how many of an item are in stock.")
    page.fill("#repo", str(repo))

    page.click("button[value=draft]")
    page.wait_for_selector("#plan-drafted", timeout=30000)

    assert page.input_value("#markdown") == NOTES_PLAN
    assert not Run.objects.exists()  # drafted, not accepted
    page.screenshot(path=str(ARTIFACTS / "new-run-drafted.png"), full_page=True)
    page.fill("#run_id", "from-notes")
    page.click("button[value=create]")
    page.wait_for_url(product.base + "/runs/from-notes/")
    page.wait_for_selector('#run-state:has-text("Done Success")', timeout=60000)
    assert Run.objects.get(run_id="from-notes").goal == "Count the stock"
