"""Headless Chromium drives the console on a real gateway (shared vLLM server): sign in, three verticals, an eval
chart, a streamed playground answer, promote + roll back with an admin key, the refusal for a read-only key.

Screenshots go to test-artifacts/console/ (kept after the run).
"""

from __future__ import annotations

import re

import pytest

from tests.fixtures.console import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (apt-get install chromium)")]

# Records every length the streamed answer takes, so the test sees text arrive in pieces, not in one go.
WATCH_STREAM = """() => {
  window.__lengths = [];
  const root = document.getElementById('pg-transcript');
  new MutationObserver(() => {
    const texts = root.querySelectorAll('.turn.assistant .text');
    if (texts.length) window.__lengths.push(texts[texts.length - 1].textContent.length);
  }).observe(root, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a refused call (403/409) is logged by Chromium as "Failed to load resource": expected, and shown on the page
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def shots(artifacts_dir):
    folder = artifacts_dir / "console"
    folder.mkdir(exist_ok=True)
    return lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(page, url: str, key: str) -> None:
    page.goto(url + "/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("article.vertical").first.wait_for()
    assert key not in page.url  # the key never goes into a URL


def production_of(page) -> str:
    return page.locator("#registry-production").inner_text()


def test_operator_journey(page, console_stack, shots):
    from playwright.sync_api import expect

    s, v = console_stack, console_stack.vertical
    page.goto(s.url + "/console")
    shots(page, "01-login")
    sign_in(page, s.url, s.admin_key)

    # three verticals, ours with its production version, candidate, engine and backend
    cards = page.locator("article.vertical")
    expect(cards).to_have_count(3)
    card = page.locator(f'article.vertical[data-vertical="{v}"]')
    expect(card.locator(".production")).to_have_text("v1")
    expect(card.locator(".candidates")).to_have_text("v2")
    expect(card).to_contain_text("vllm-lora")
    expect(card).to_contain_text("cpu")
    shots(page, "02-verticals")

    # the eval report of v2: one chart row per task, the significance line and the gates
    card.get_by_role("button", name="Eval report").click()
    chart = page.locator("#eval-domain svg.chart")
    expect(chart).to_be_visible()
    domain_tasks = s.report["summary"]["domain_tasks"]
    expect(chart.locator("g.task")).to_have_count(len(domain_tasks))
    expect(page.locator("#eval-general svg.chart g.task")).to_have_count(1)
    expect(page.locator("#eval-significance")).to_contain_text(f"{s.report['summary']['p_value']:.4f}")
    expect(page.locator("#eval-domain-gain")).to_have_text(f"{s.report['summary']['domain_gain']:.2f}")
    shots(page, "03-eval-report")

    # playground: the answer streams in pieces and names the adapter that answered
    page.get_by_role("tab", name="Playground").click()
    page.get_by_label("Vertical").select_option(v)
    page.evaluate(WATCH_STREAM)
    page.get_by_label("Max tokens").fill("24")
    page.get_by_label("Message").fill("What drives ocean tides?")
    page.get_by_role("button", name="Send").click()
    page.locator(".turn.assistant .text[data-done]").wait_for(timeout=120_000)
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths), lengths
    expect(page.locator("#pg-adapter")).to_have_text(f"{v}@1")
    expect(page.locator("#pg-status")).to_contain_text("Done")
    assert page.locator(".turn.assistant .text").inner_text().strip()
    shots(page, "04-playground")

    # promote v2: the gates refuse first, force promotes, rollback returns; the gateway follows each step
    page.get_by_role("tab", name="Registry").click()
    page.get_by_label("Vertical").select_option(v)
    expect(page.locator("#registry-production")).to_have_text("v1")
    page.get_by_role("button", name="Promote v2").click()
    expect(page.locator("#registry-status [role=alert]")).to_contain_text(f"cannot promote {v}@2")
    expect(page.locator("#registry-production")).to_have_text("v1")
    page.get_by_label("Force (skip gates)").check()
    page.get_by_role("button", name="Promote v2").click()
    expect(page.locator("#registry-status [role=status]")).to_contain_text(f"{v} v2 is now in production")
    expect(page.locator("#registry-production")).to_have_text("v2")
    assert s.service.table.aliases[v] == f"{v}@2"
    shots(page, "05-promoted")
    page.get_by_role("button", name=f"Roll back {v}").click()
    expect(page.locator("#registry-status [role=status]")).to_contain_text("production is now v1")
    expect(page.locator("#registry-production")).to_have_text("v1")
    expect(page.locator('tr[data-version="2"]')).to_have_attribute("data-stage", "archived")
    assert s.service.table.aliases[v] == f"{v}@1"
    shots(page, "06-rolled-back")

    # the audit log shows the calls above, with who made them
    page.get_by_role("tab", name="Audit log").click()
    expect(page.locator("table.audit")).to_contain_text("console-admin")
    shots(page, "07-audit")

    # live service numbers for the vertical the playground used
    page.get_by_role("tab", name="Live service").click()
    row = page.locator(f'table.live tr[data-vertical="{v}"]')
    expect(row).to_be_visible()
    assert int(row.locator(".requests").inner_text()) >= 1
    expect(row.locator("svg.sparkline polyline")).to_have_count(1, timeout=10_000)  # a second poll drew the trend
    shots(page, "08-live")


def test_read_only_key_sees_the_refusal(page, console_stack, shots):
    from playwright.sync_api import expect

    s, v = console_stack, console_stack.vertical
    sign_in(page, s.url, s.viewer_key)
    expect(page.get_by_role("tab", name="Audit log")).to_be_hidden()
    page.goto(f"{s.url}/console#/registry?vertical={v}")
    before = s.service.registry.production(v).version
    page.get_by_label("Force (skip gates)").check()
    page.get_by_role("button", name="Promote v2").click()
    alert = page.locator("#registry-status [role=alert]")
    expect(alert).to_contain_text("needs an API key with the 'admin' scope")
    expect(alert).to_contain_text("console-viewer")
    assert s.service.registry.production(v).version == before
    shots(page, "09-read-only-refused")


def test_keyboard_and_chinese(page, console_stack, shots):
    from playwright.sync_api import expect

    s = console_stack
    sign_in(page, s.url, s.admin_key)
    page.get_by_role("tab", name="Verticals").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Registry")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Registry")).to_be_focused()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Audit log")).to_be_focused()
    # every form control on every view has an accessible name
    for tab in ("Verticals", "Registry", "Eval reports", "Playground", "Audit log"):
        page.get_by_role("tab", name=tab).click()
        page.locator("#view .view > *").first.wait_for()
        unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((el) => el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                            && !el.textContent.trim())
            .map((el) => el.outerHTML)""")
        assert not unnamed, (tab, unnamed)
    page.get_by_role("button", name=re.compile("中文")).click()
    expect(page.get_by_role("tab", name="垂直领域")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.get_by_role("tab", name="垂直领域").click()
    expect(page.locator("article.vertical").first).to_contain_text("生产版本")
    shots(page, "10-chinese")
    page.get_by_role("button", name=re.compile("English")).click()
    expect(page.get_by_role("tab", name="Verticals")).to_be_visible()
