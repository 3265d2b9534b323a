"""The QuickBooks card page in a real browser (Debian's Chromium through Playwright), against the
real app, a real arq worker, real Postgres and Redis, and the simulator playing Intuit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from redis import Redis

from tests.browser.stack import Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "quickbooks-card.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UK_REALM = "9341450000000002"
COMPANY = "Trafalgar Consulting Ltd"
SLOW = 20_000  # ms: a push, or a webhook then a pull, through the real worker

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (`make browser` installs it)",
)


@pytest.fixture
def stack(database_url: str, redis_url: str, key_prefix: str) -> Iterator[Stack]:
    with running_stack(database_url, redis_url, key_prefix) as running:
        yield running
    # The shared Redis keeps nothing of this test: its queue, caches and received events.
    client = Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{running.settings.redis.key_prefix}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def test_from_connect_to_a_payment_status_coming_back(stack: Stack, browser: Browser) -> None:
    """The newcomer's journey on the card page: connect, check, configure, map, preview, push an
    invoice, the accountant records a payment, `paid` comes back and the platform receives a
    signature-verified `payment_updated`; a failed record shows its message and Retry pushes
    it; the accountant deletes the payment and `unpaid` comes back; Disconnect asks first."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{stack.api_url}/")

    page.fill("#org", f"org_browser_{uuid.uuid4().hex[:8]}")
    page.click("#mint")
    expect(page.locator("#status")).to_have_text("Not connected")

    page.click("#connect")
    page.wait_for_url(f"{stack.simulator_url}/connect/oauth2*")
    page.check(f'input[name="realm_id"][value="{UK_REALM}"]')
    page.click("button.connect")
    expect(page.locator("#status")).to_have_text(f"Connected — {COMPANY}", timeout=SLOW)
    expect(page.locator("#banner")).to_have_text(f"Connected to {COMPANY}.")
    expect(page.locator("#token-health")).to_contain_text("Token health")

    page.click("#test")
    expect(page.locator("#banner")).to_have_text("Every check passed.", timeout=SLOW)
    for name in ("credentials", "company_file", "read_customers", "read_invoices"):
        expect(page.locator(f'#checks li[data-check="{name}"] .outcome')).to_have_text("pass")

    _save_settings(page)
    _map(page, "services:svc_consulting", suggested="Consulting", mapped="Consulting")
    _map(page, "tax-rates:tr_vat20", suggested="20.0% S", mapped="20.0% S")

    page.click("#preview")
    totals = page.locator('.preview-invoice[data-invoice="inv_1001"] .totals')
    expect(totals.locator('tr[data-total="total"] td')).to_have_text(["360.00", "360.00"])
    expect(totals.locator('tr[data-total="tax_total"] td')).to_have_text(["60.00", "60.00"])
    expect(totals.locator("tr.differs")).to_have_count(0)

    page.click("#enable")
    expect(page.locator("#banner")).to_contain_text("invoices are pushed automatically")

    page.click("#invoice-form button[type=submit]")
    expect(page.locator("#platform-state")).to_contain_text("4 stored")
    invoice_row = page.locator('#log-rows tr[data-record="invoice:inv_1001"]')
    expect(invoice_row).to_have_attribute("data-status", "synced", timeout=SLOW)

    qbo_invoice = page.locator("#qbo-invoices tbody").first
    expect(qbo_invoice.locator(".balance")).to_have_text("360.00", timeout=SLOW)
    qbo_invoice.get_by_role("button", name="Record payment").click()
    expect(page.locator("#quickbooks-state")).to_have_text("Payment recorded in QuickBooks.")
    expect(invoice_row.locator(".payment")).to_have_text("paid", timeout=SLOW)
    payment_event = page.locator('#events li[data-type="quickbooks.invoice.payment_updated"]')
    expect(payment_event.first).to_contain_text("✓ signature verified", timeout=SLOW)
    expect(payment_event.first).to_contain_text("inv_1001: paid")

    page.click("#expense-form button[type=submit]")
    expense_row = page.locator('#log-rows tr[data-record="expense:exp_1"]')
    expect(expense_row).to_have_attribute("data-status", "failed", timeout=SLOW)
    expect(expense_row.locator(".error-message")).to_contain_text(
        "Expense category 'travel' is not mapped"
    )
    _map(page, "expense-categories:travel", suggested="Travel", mapped="Travel")
    expense_row.get_by_role("button", name="Retry").click()
    expect(expense_row).to_have_attribute("data-status", "synced", timeout=SLOW)

    page.select_option("#filter-status", "synced")
    expect(page.locator("#log-rows tr")).to_have_count(3)  # the client, the invoice, the expense
    page.select_option("#filter-status", "")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    qbo_invoice.get_by_role("button", name="Delete payment").click()
    expect(page.locator("#quickbooks-state")).to_have_text("Payment deleted in QuickBooks.")
    expect(invoice_row.locator(".payment")).to_have_text("unpaid", timeout=SLOW)
    expect(payment_event.first).to_contain_text("inv_1001: unpaid", timeout=SLOW)

    asked: list[str] = []

    def answer(accept: bool) -> None:
        def handle(dialog: Dialog) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        page.once("dialog", handle)

    answer(accept=False)
    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text(f"Connected — {COMPANY}")
    answer(accept=True)
    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text(re.compile(f"^Disconnected — {COMPANY}"))
    assert len(asked) == 2
    assert asked[0].startswith("Disconnect QuickBooks?")


def _save_settings(page: Page) -> None:
    form = page.locator("#settings")
    expect(form.locator('select[name="ap_account_id"] option')).not_to_have_count(1)
    form.locator('select[name="default_income_account_id"]').select_option(label="Sales")
    form.locator('select[name="ap_account_id"]').select_option(label="Accounts Payable (Creditors)")
    form.locator('select[name="payment_account_id"]').select_option(label="Current Account")
    page.click("#save-settings")
    expect(page.locator("#banner")).to_have_text("Settings saved.")
    expect(page.locator("#settings-state")).to_contain_text("Saved")


def _map(page: Page, row_id: str, *, suggested: str, mapped: str) -> None:
    row = page.locator(f'#mapping-rows tr[data-mapping="{row_id}"]')
    expect(row.locator(".suggested")).to_contain_text(f"Suggested: {suggested}")
    row.get_by_role("button", name="Map").click()
    expect(page.locator(f'#mapping-rows tr[data-mapping="{row_id}"] .mapped')).to_contain_text(
        f"→ {mapped}"
    )
