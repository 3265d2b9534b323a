"""The QuickBooks card page in a real browser (Debian's Chromium through Playwright), against the
real app, a real arq worker, real Postgres and Redis, and the simulator playing Intuit."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from redis import Redis

from qbsync.db import Database
from qbsync.security import mint_dev_token
from qbsync.settings import Settings
from tests.browser.stack import Stack, running_stack
from tests.connections.committed import remove_orgs

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
ORG_PREFIX = "org_browser_"
COMPANY = "Trafalgar Consulting Ltd"
SLOW = 20_000  # ms: a push, or a webhook then a pull, through the real worker
DIFFERS_BACKGROUND = "rgb(255, 241, 194)"  # app.css: tr.differs td

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (`make browser` installs it)",
)


@pytest.fixture
def stack(database_url: str, redis_url: str, key_prefix: str) -> Iterator[Stack]:
    since = datetime.now(UTC)
    with running_stack(database_url, redis_url, key_prefix) as running:
        yield running
    # The suite's database keeps no row of the journey's org (tests elsewhere count rows).
    asyncio.run(_remove_journey_rows(database_url, running.settings, since))
    # The shared Redis keeps nothing of this test: its queue, caches and received events.
    client = Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{running.settings.redis.key_prefix}*"):
            client.delete(key)
    finally:
        client.close()


async def _remove_journey_rows(database_url: str, settings: Settings, since: datetime) -> None:
    db = Database.connect(database_url, settings.database)
    try:
        await remove_orgs(db, ORG_PREFIX, since)
    finally:
        await db.dispose()


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
    """The newcomer's journey on the card page: an expired token is named; connect, check,
    configure, map, preview (equal totals, then a one-cent rounding difference highlighted),
    push an invoice, the accountant records a payment, `paid` comes back and the platform
    receives a signature-verified `payment_updated`; a failed record shows its message, Ignore
    sets it aside and Retry pushes it; the accountant deletes the payment (`unpaid` comes back)
    and voids the invoice (`voided` comes back); Disconnect asks first. Refused input shows the
    problem's message, naming the field (a blank org, a quantity or an amount that is not a
    number)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{stack.api_url}/")

    expired = mint_dev_token(stack.settings.auth, org_id="org_old", user_id="u", minutes=-5)
    page.evaluate("token => localStorage.setItem('qbsync.devToken', token)", expired)
    page.reload()
    expect(page.locator("#status")).to_have_text("The token has expired.")
    # The poll is refused too: the page says so rather than going quietly stale.
    expect(page.locator("#banner")).to_have_text("The token has expired. Use a dev token again.")

    page.fill("#org", "  ")
    page.click("#mint")
    expect(page.locator("#banner")).to_have_text("The request is not valid: check org_id. (org_id)")
    page.fill("#org", f"{ORG_PREFIX}{uuid.uuid4().hex[:8]}")
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
    _preview_a_rounding_difference(page)

    page.click("#enable")
    expect(page.locator("#banner")).to_contain_text("invoices are pushed automatically")

    invoice_form = page.locator("#invoice-form")
    invoice_form.locator('input[name="quantity"]').fill("two")
    invoice_form.locator("button[type=submit]").click()
    expect(page.locator("#platform-state")).to_have_text(
        "The invoice refused: The request is not valid: check quantity. (quantity)"
    )
    invoice_form.locator('input[name="quantity"]').fill("2")
    invoice_form.locator("button[type=submit]").click()
    expect(page.locator("#platform-state")).to_contain_text("4 stored")
    invoice_row = page.locator('#log-rows tr[data-record="invoice:inv_1001"]')
    expect(invoice_row).to_have_attribute("data-status", "synced", timeout=SLOW)

    qbo_invoice = page.locator("#qbo-invoices tbody").first
    expect(qbo_invoice.locator(".balance")).to_have_text("360.00", timeout=SLOW)
    amount = qbo_invoice.locator("input")
    amount.fill("lots")
    page.wait_for_timeout(1_700)  # one poll redraws the panel: what was typed stays
    expect(amount).to_have_value("lots")
    qbo_invoice.get_by_role("button", name="Record payment").click()
    expect(page.locator("#quickbooks-state")).to_have_text(
        "The request is not valid: check amount. (amount)"
    )
    amount.fill("360.00")
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
    expense_row.get_by_role("button", name="Ignore").click()
    expect(page.locator("#banner")).to_have_text("Set aside: expense exp_1.")
    expect(expense_row).to_have_attribute("data-status", "ignored")
    expect(expense_row.get_by_role("button", name="Ignore")).to_have_count(0)
    _map(page, "expense-categories:travel", suggested="Travel", mapped="Travel")
    expense_row.get_by_role("button", name="Retry").click()
    expect(expense_row).to_have_attribute("data-status", "synced", timeout=SLOW)

    page.select_option("#filter-status", "synced")
    expect(page.locator("#log-rows tr")).to_have_count(3)  # the client, the invoice, the expense
    page.select_option("#filter-status", "")

    qbo_invoice.get_by_role("button", name="Delete payment").click()
    expect(page.locator("#quickbooks-state")).to_have_text("Payment deleted in QuickBooks.")
    expect(invoice_row.locator(".payment")).to_have_text("unpaid", timeout=SLOW)
    expect(payment_event.first).to_contain_text("inv_1001: unpaid", timeout=SLOW)

    qbo_invoice.get_by_role("button", name="Void").click()
    expect(page.locator("#quickbooks-state")).to_have_text("Invoice voided in QuickBooks.")
    expect(qbo_invoice).to_contain_text("· voided")
    expect(invoice_row.locator(".payment")).to_have_text("voided", timeout=SLOW)
    expect(payment_event.first).to_contain_text("inv_1001: voided", timeout=SLOW)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

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


def _preview_a_rounding_difference(page: Page) -> None:
    """Three lines of 0.33 at 20 %: the platform rounds each line's VAT (3 x 0.07), QuickBooks
    the rate's total (0.198 → 0.20); the two differing totals are highlighted. The form is put
    back as it was."""
    form = page.locator("#invoice-form")
    changed = {"quantity": "1", "unit_price": "0.33", "lines": "3"}
    for name, value in changed.items():
        form.locator(f'input[name="{name}"]').fill(value)
    form.locator('select[name="tax_rounding"]').select_option("per_line")
    page.click("#preview")
    totals = page.locator('.preview-invoice[data-invoice="inv_1001"] .totals')
    expect(totals.locator('tr[data-total="subtotal"] td')).to_have_text(["0.99", "0.99"])
    expect(totals.locator('tr[data-total="tax_total"] td')).to_have_text(["0.21", "0.20"])
    expect(totals.locator('tr[data-total="total"] td')).to_have_text(["1.20", "1.19"])
    expect(totals.locator("tr.differs")).to_have_count(2)
    expect(totals.locator('tr.differs[data-total="tax_total"] td').first).to_have_css(
        "background-color", DIFFERS_BACKGROUND
    )
    expect(page.locator(".preview-invoice .warn").first).to_contain_text(
        "tax_total: platform 0.21, QuickBooks 0.20"
    )
    for name, value in {"quantity": "2", "unit_price": "150.00", "lines": "1"}.items():
        form.locator(f'input[name="{name}"]').fill(value)
    form.locator('select[name="tax_rounding"]').select_option("per_rate")


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
