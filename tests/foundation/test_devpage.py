"""The dev QuickBooks card page and its dev-only routes: the page, a dev token, the platform
panel's signed events, the accountant panel, and the receiver of qbsync's outbound events."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi.routing import APIRoute

from qbsync.cli import main
from qbsync.connections.consent import CallbackReason
from qbsync.db import Database
from qbsync.devpage.router import router as devpage_router
from qbsync.devtools import accountant, platform_events
from qbsync.devtools.platform_events import InvoiceLine
from qbsync.main import create_app
from qbsync.security import TokenVerifier
from qbsync.settings import DEV_PLATFORM_EVENTS_SECRET, Settings, get_settings
from qbsync.simulator.config import SimulatorConfig
from qbsync.simulator.ledger import WriteRequest
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import REDIRECT_URI, US_REALM, Consent, simulator_settings

UK_REALM = "9341450000000002"
EVENTS_SECRET = "whsec_" + "dGVzdC1ldmVudHMtc2VjcmV0LTE2Ynl0ZXM="


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    """As the conftest's, with outbound events signed by a secret of their own."""
    return Settings(
        env="test",
        redis={"queue_name": f"{key_prefix}:devpage", "key_prefix": f"{key_prefix}:devpage"},
        platform={"events_url": "http://platform.test/events", "events_secret": EVENTS_SECRET},
    )


async def test_the_card_page_is_html_and_explains_every_callback_reason(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/?quickbooks=confirm&handle=abc")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/dev/assets/app.js"' in page.text
    script = await client.get("/dev/assets/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/v1/quickbooks/connect/confirm" in script.text
    reasons = script.text.split("const REASONS = {", 1)[1].split("};", 1)[0]
    explained = set(re.findall(r"^  (\w+): \"", reasons, flags=re.MULTILINE))
    assert explained == {reason.value for reason in CallbackReason}
    assert (await client.get("/dev/assets/app.css")).headers["content-type"].startswith("text/css")
    missing = await client.get("/dev/assets/secrets.py")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")


async def test_the_old_dev_page_address_forwards_the_callback_outcome(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/dev/quickbooks?quickbooks=error&reason=access_denied")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/?quickbooks=error&reason=access_denied"


def test_the_readme_documents_every_callback_reason() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \| ", readme, flags=re.MULTILINE))
    assert {reason.value for reason in CallbackReason} <= documented


async def test_the_dev_page_mints_a_token_the_api_accepts(client: httpx.AsyncClient) -> None:
    minted = await client.post("/dev/token", json={"org_id": "org_dev", "user_id": "u"})
    assert minted.status_code == 200
    status = await client.get("/v1/quickbooks/connection", headers=bearer(minted.json()["token"]))
    assert status.status_code == 200
    assert status.json()["status"] == "not_connected"


def _dev_routes() -> list[tuple[str, str]]:
    """Every (method, path) the dev page's router serves, its included routers' too, path
    parameters filled in."""
    routes = []
    pending: list[tuple[str, Any]] = [("", route) for route in devpage_router.routes]
    while pending:
        prefix, route = pending.pop(0)
        included = getattr(route, "original_router", None)
        if included is not None:
            inner = prefix + route.include_context.prefix
            pending += [(inner, child) for child in included.routes]
            continue
        assert isinstance(route, APIRoute)
        path = re.sub(r"\{[^}]+\}", "1", prefix + route.path)
        routes += [(method, path) for method in sorted(route.methods or ())]
    return routes


async def test_production_serves_no_dev_page_and_no_dev_route(make_token: TokenFactory) -> None:
    app = create_app(Settings(env="dev").model_copy(update={"env": "production"}))
    transport = httpx.ASGITransport(app=app)
    routes = _dev_routes()
    assert len(routes) >= 14, routes
    headers = bearer(make_token("org_prod"))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
        for method, path in routes:
            answer = await client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 404, (method, path, answer.status_code)


async def test_qbsync_token_prints_a_token_for_the_org(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBSYNC_ENV", "dev")
    get_settings.cache_clear()
    try:
        assert main(["token", "--org", "org_42", "--user", "ada"]) == 0
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    context = await TokenVerifier(Settings(env="dev").auth).verify(token)
    assert (context.org_id, context.user_id) == ("org_42", "ada")


def test_qbsync_token_refuses_outside_dev(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBSYNC_ENV", "production")
    monkeypatch.setattr(
        "qbsync.cli.get_settings",
        lambda: Settings(env="dev").model_copy(update={"env": "production"}),
    )
    assert main(["token", "--org", "org_42"]) == 2
    assert "dev tokens only" in capsys.readouterr().err


def test_in_dev_qbsync_plays_the_platform_unless_told_otherwise() -> None:
    dev = Settings(env="dev").platform
    assert dev.settings_url == "http://127.0.0.1:8000/"
    assert dev.events_url == "http://127.0.0.1:8000/dev/platform/events"
    assert dev.events_secret is not None
    assert dev.events_secret.get_secret_value() == DEV_PLATFORM_EVENTS_SECRET
    assert Settings(env="dev", port=8123).platform.events_url == (
        "http://127.0.0.1:8123/dev/platform/events"
    )
    chosen = Settings(
        env="dev",
        platform={
            "settings_url": "https://app.test/s",
            "events_url": "https://app.test/hooks",
            "events_secret": EVENTS_SECRET,
        },
    ).platform
    assert (chosen.settings_url, chosen.events_url) == (
        "https://app.test/s",
        "https://app.test/hooks",
    )
    assert chosen.events_secret is not None
    assert chosen.events_secret.get_secret_value() == EVENTS_SECRET
    test = Settings(env="test").platform
    assert test.settings_url.startswith("http://localhost:3000/")
    assert (test.events_url, test.events_secret) == (None, None)


def test_production_refuses_the_dev_events_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="QBSYNC_PLATFORM__EVENTS_SECRET"):
        Settings(
            env="production",
            platform={
                "events_url": "https://app.test/h",
                "events_secret": DEV_PLATFORM_EVENTS_SECRET,
            },
        )


@pytest.mark.parametrize("body", [{"org_id": "   "}, {"user_id": ""}, {"org_id": "o" * 129}])
async def test_a_dev_token_for_a_blank_or_oversized_id_is_refused(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    """A blank org would mint a token the API then refuses: the problem names the field."""
    answer = await client.post("/dev/token", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in answer.json()["errors"]] == list(body)


async def test_no_dev_token_when_tokens_come_from_a_jwks() -> None:
    settings = Settings(env="dev", auth={"jwks_url": "https://platform.test/jwks.json"})
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
        answer = await client.post("/dev/token", json={})
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "dev_tokens_unavailable"


# The shared helpers (qbsync.devtools) ---------------------------------------------------------


def test_per_line_rounding_gives_the_cent_quickbooks_does_not() -> None:
    """Three lines of 0.33 at 20 %: per rate 0.99 x 20 % = 0.198 → 0.20; per line 3 x 0.07."""
    client = platform_events.client_snapshot("cl_1", "Acme Ltd")
    line = InvoiceLine("svc_1", "Hour", Decimal("1"), Decimal("0.33"), "tr_20", Decimal("20"))

    def totals(rounding: platform_events.TaxRounding) -> tuple[str, str]:
        invoice = platform_events.invoice_snapshot(
            "inv_1",
            number="INV-1",
            client=client,
            lines=[line] * 3,
            currency="GBP",
            issue_date=date(2026, 12, 1),
            tax_rounding=rounding,
        )
        return invoice["tax_total"], invoice["total"]

    assert totals("per_rate") == ("0.20", "1.19")
    assert totals("per_line") == ("0.21", "1.20")


def test_an_invoice_snapshot_totals_each_rate_in_decimal() -> None:
    client = platform_events.client_snapshot("cl_1", "Acme Ltd", email="ap@acme.test")
    lines = [
        InvoiceLine(
            "svc_1", "Consulting", Decimal("1.5"), Decimal("33.33"), "tr_20", Decimal("20")
        ),
        InvoiceLine("svc_1", "More", Decimal("1"), Decimal("2.50"), "tr_5", Decimal("5")),
    ]
    invoice = platform_events.invoice_snapshot(
        "inv_1",
        number="INV-1",
        client=client,
        lines=lines,
        currency="GBP",
        issue_date=date(2026, 12, 1),
    )
    # 1.5 x 33.33 = 49.995 → 50.00 (half up); VAT 10.00 at 20 %, 0.125 → 0.13 at 5 %
    assert (invoice["subtotal"], invoice["tax_total"], invoice["total"]) == (
        "52.50",
        "10.13",
        "62.63",
    )
    assert invoice["amounts_are"] == "tax_exclusive"
    assert invoice["client"] == {"id": "cl_1", "name": "Acme Ltd", "email": "ap@acme.test"}


async def test_a_signed_platform_event_is_stored_and_a_tampered_one_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """S3, from the sender's side: the helper's signature is the one qbsync checks."""
    secret = settings.platform.webhook_secret.get_secret_value()
    event = platform_events.event(
        "client.upserted", "org_devtools", platform_events.client_snapshot("cl_9", "Nine Ltd")
    )
    answer = await platform_events.send_events(client, "http://qbsync.test", secret, [event])
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    body = json.dumps(event).encode()
    headers = platform_events.signed_headers(secret, body)
    forged = await client.post(
        "/v1/events", content=body.replace(b"Nine", b"Nein"), headers=headers
    )
    assert forged.status_code == 401


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorHandle]:
    async with running_simulator(SimulatorConfig(redirect_uris=(REDIRECT_URI,))) as handle:
        yield handle


async def test_the_accountant_records_and_deletes_a_payment_and_voids_an_invoice(
    simulator: SimulatorHandle,
) -> None:
    ledger = simulator.state.ledger(UK_REALM)
    customer = ledger.create("Customer", WriteRequest({"DisplayName": "Devtools Ltd"}))
    line = {
        "Amount": Decimal("100.00"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "3"}},
    }
    invoice = ledger.create(
        "Invoice",
        WriteRequest(
            {
                "CustomerRef": {"value": customer["Id"]},
                "GlobalTaxCalculation": "TaxExcluded",
                "Line": [line],
            }
        ),
    )
    async with httpx.AsyncClient() as http:
        url = simulator.base_url
        listed = {row.id: row for row in await accountant.list_invoices(http, url, UK_REALM)}
        total = listed[invoice["Id"]].total
        paid = await accountant.record_payment(
            http, url, UK_REALM, invoice["Id"], Decimal("30.00"), paid_on=date(2026, 12, 1)
        )
        after_payment = {row.id: row for row in await accountant.list_invoices(http, url, UK_REALM)}
        paid_invoices = await accountant.payments_by_invoice(http, url, UK_REALM)
        assert paid_invoices[invoice["Id"]] == [paid]
        await accountant.delete_payment(http, url, UK_REALM, paid)
        after_delete = {row.id: row for row in await accountant.list_invoices(http, url, UK_REALM)}
        await accountant.void_invoice(http, url, UK_REALM, invoice["Id"])
        voided = {row.id: row for row in await accountant.list_invoices(http, url, UK_REALM)}
        with pytest.raises(accountant.SimulatorRefusedError) as refused:
            await accountant.record_payment(http, url, UK_REALM, "99999", Decimal("1"))
        customers = await accountant.list_documents(http, url, UK_REALM, "Customer")
        with pytest.raises(ValueError, match="not a QuickBooks entity"):
            await accountant.list_documents(http, url, UK_REALM, "../payments")
    assert [c["Id"] for c in customers if c["DisplayName"] == "Devtools Ltd"] == [customer["Id"]]
    assert after_payment[invoice["Id"]].balance == total - Decimal("30.00")
    assert after_delete[invoice["Id"]].balance == total
    assert voided[invoice["Id"]].voided
    assert voided[invoice["Id"]].balance == Decimal("0")
    assert refused.value.status_code >= 400
    assert refused.value.message


# The dev routes -----------------------------------------------------------------------------


async def test_the_platform_panel_sends_a_signed_invoice_with_its_client_service_and_tax(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    form = {
        "client_id": "cl_panel",
        "name": "Panel Ltd",
        "email": "ap@panel.test",
        "invoice_id": "inv_panel",
        "number": "P-1",
        "currency": "GBP",
        "service_id": "svc_panel",
        "service_name": "Consulting",
        "quantity": "2",
        "unit_price": "150.00",
        "tax_rate_id": "tr_panel",
        "tax_rate_name": "VAT 20%",
        "tax_rate": "20",
    }
    headers = bearer(make_token("org_panel"))
    sent = await client.post("/dev/platform/invoices", json=form, headers=headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["types"] == [
        "client.upserted",
        "service.upserted",
        "tax_rate.upserted",
        "invoice.upserted",
    ]
    assert sent.json()["accepted"] == 4
    record = await client.get("/v1/quickbooks/sync/records/invoice/inv_panel", headers=headers)
    assert record.status_code == 200, record.text
    assert record.json()["snapshot_summary"]["total"] == "360.00"


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/dev/platform/clients", {"client_id": "cl 1", "name": "A"}, "client_id"),
        (
            "/dev/platform/payments",
            {"payment_id": "p1", "invoice_id": "i1", "amount": "-5", "currency": "GBP"},
            "amount",
        ),
        (
            "/dev/platform/expenses",
            {
                "expense_id": "e1",
                "supplier_id": "s1",
                "supplier_name": "Rail",
                "amount": "1.234",
                "currency": "GBP",
            },
            "amount",
        ),
    ],
)
async def test_bad_panel_input_is_a_problem_naming_the_field(
    client: httpx.AsyncClient, make_token: TokenFactory, path: str, form: dict[str, str], field: str
) -> None:
    answer = await client.post(path, json=form, headers=bearer(make_token("org_panel")))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "validation_error"
    assert [error["field"] for error in answer.json()["errors"]] == [field]


async def test_the_panels_act_only_for_the_tokens_org(client: httpx.AsyncClient) -> None:
    answer = await client.post("/dev/platform/clients", json={"client_id": "c", "name": "n"})
    assert answer.status_code == 401
    assert (await client.get("/dev/accountant/invoices")).status_code == 401
    assert (await client.get("/dev/platform/events")).status_code == 401


async def test_the_accountant_panel_needs_a_connected_company(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    answer = await client.get("/dev/accountant/invoices", headers=bearer(make_token("org_none")))
    assert answer.status_code == 409
    assert answer.json()["code"] == "not_connected"


def _signed(secret: str, body: bytes, *, minutes_ago: int = 0) -> dict[str, str]:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return platform_events.signed_headers(secret, body, now=when)


async def test_the_events_receiver_keeps_verified_deliveries_only(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    delivery = {
        "id": "evt_out_1",
        "type": "quickbooks.invoice.payment_updated",
        "organization_id": "org_receiver",
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": {"invoice_id": "inv_1", "status": "paid"},
    }
    body = json.dumps(delivery).encode()
    other_secret = "whsec_" + "b3RoZXItc2VjcmV0LW9mLTE2LWJ5dGVz"
    refusals = [
        await client.post(
            "/dev/platform/events", content=body, headers=_signed(other_secret, body)
        ),
        await client.post(
            "/dev/platform/events",
            content=body,
            headers=_signed(EVENTS_SECRET, body, minutes_ago=6),
        ),
        await client.post("/dev/platform/events", content=body),
    ]
    for refused in refusals:
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "invalid_signature"
    headers = bearer(make_token("org_receiver"))
    assert (await client.get("/dev/platform/events", headers=headers)).json() == {"items": []}

    accepted = await client.post(
        "/dev/platform/events", content=body, headers=_signed(EVENTS_SECRET, body)
    )
    assert accepted.status_code == 204
    listed = (await client.get("/dev/platform/events", headers=headers)).json()["items"]
    assert [(e["type"], e["signature_verified"], e["data"]["status"]) for e in listed] == [
        ("quickbooks.invoice.payment_updated", True, "paid")
    ]
    others = await client.get("/dev/platform/events", headers=bearer(make_token("org_other")))
    assert others.json() == {"items": []}


# Hostile input and other orgs ---------------------------------------------------------------

INVOICE_FORM = {
    "client_id": "cl_panel",
    "name": "Panel Ltd",
    "invoice_id": "inv_panel",
    "number": "P-1",
    "currency": "GBP",
    "service_id": "svc_panel",
    "service_name": "Consulting",
    "quantity": "2",
    "unit_price": "150.00",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": 0}, "lines"),
        ({"lines": 21}, "lines"),
        ({"quantity": "NaN"}, "quantity"),
        ({"unit_price": "Infinity"}, "unit_price"),
        ({"unit_price": "1e30"}, "unit_price"),
        ({"tax_rounding": "bankers"}, "tax_rounding"),
        ({"name": "n" * 101}, "name"),
        ({"number": "INV 1; DROP"}, "number"),
        # The org is the token's: a form can't name another one.
        ({"organization_id": "org_victim"}, "organization_id"),
    ],
)
async def test_a_hostile_invoice_form_is_refused_naming_the_field(
    client: httpx.AsyncClient, make_token: TokenFactory, change: dict[str, object], field: str
) -> None:
    """S8: bounded before anything is sent to `POST /v1/events`."""
    headers = bearer(make_token("org_panel"))
    for path in ("/dev/platform/invoices", "/dev/platform/invoices/preview-body"):
        answer = await client.post(path, json=INVOICE_FORM | change, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in answer.json()["errors"]] == [field]
    record = await client.get("/v1/quickbooks/sync/records/invoice/inv_panel", headers=headers)
    assert record.status_code == 404


async def test_an_oversized_panel_body_is_refused_before_any_work(
    client: httpx.AsyncClient, make_token: TokenFactory, settings: Settings
) -> None:
    """S8."""
    body = json.dumps(INVOICE_FORM | {"description": "x" * settings.max_body_bytes}).encode()
    answer = await client.post(
        "/dev/platform/invoices",
        content=body,
        headers=bearer(make_token("org_panel")) | {"content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"


PUBLIC_DEV_ROUTES = {
    ("GET", "/"),
    ("GET", "/dev/quickbooks"),
    ("GET", "/dev/assets/1"),
    ("POST", "/dev/token"),
    # Authenticated by its Standard Webhooks signature instead (see the receiver's tests).
    ("POST", "/dev/platform/events"),
}


async def test_every_dev_route_of_org_data_refuses_a_missing_expired_or_forged_token(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """S2 for the dev routes: each answers 401 with a problem body, before reading its form."""
    guarded = [route for route in _dev_routes() if route not in PUBLIC_DEV_ROUTES]
    assert len(guarded) >= 9, guarded
    expired = make_token("org_dev", exp=int(datetime.now(UTC).timestamp()) - 60)
    forged = make_token("org_dev", secret="not-the-platform-secret-but-long-enough")
    for method, path in guarded:
        for headers, code in (
            ({}, "unauthenticated"),
            (bearer(expired), "token_expired"),
            (bearer(forged), None),
        ):
            answer = await client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            if code is not None:
                assert answer.json()["code"] == code, (method, path, answer.json())


@pytest.fixture
async def simulated(
    simulator: SimulatorHandle, key_prefix: str, db: Database, redis: ArqRedis
) -> AsyncIterator[httpx.AsyncClient]:
    """qbsync against the simulator, as `qbsync dev` runs it."""
    settings = simulator_settings(simulator, f"{key_prefix}:devpage-sim")
    app = create_app(settings, database=db, redis=redis)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            yield client


def _uk_invoice(simulator: SimulatorHandle, doc_number: str) -> dict[str, object]:
    """An invoice of 100.00 + VAT the accountant has in the UK company."""
    ledger = simulator.state.ledger(UK_REALM)
    customer = ledger.create("Customer", WriteRequest({"DisplayName": f"{doc_number} Ltd"}))
    line = {
        "Amount": Decimal("100.00"),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "3"}},
    }
    return ledger.create(
        "Invoice",
        WriteRequest(
            {
                "CustomerRef": {"value": customer["Id"]},
                "DocNumber": doc_number,
                "GlobalTaxCalculation": "TaxExcluded",
                "Line": [line],
            }
        ),
    )


async def test_the_accountant_panel_voids_an_invoice_of_the_tokens_company_only(
    simulated: httpx.AsyncClient, simulator: SimulatorHandle, make_token: TokenFactory
) -> None:
    """S1 for the dev routes: the void route acts in the token's org's company; another org's
    token (connected elsewhere, or not at all) never reaches the UK company's invoice."""
    consent = Consent(simulated, simulator, make_token)
    await consent.connect("org_uk", UK_REALM)
    await consent.connect("org_us", US_REALM)
    invoice = _uk_invoice(simulator, "UK-ONLY-1")
    invoice_id = str(invoice["Id"])
    uk, us = bearer(make_token("org_uk")), bearer(make_token("org_us"))
    void_url = f"/dev/accountant/invoices/{invoice_id}/void"

    async def uk_invoice() -> dict[str, object]:
        listed = await simulated.get("/dev/accountant/invoices", headers=uk)
        assert listed.status_code == 200, listed.text
        assert listed.json()["realm_id"] == UK_REALM
        rows: list[dict[str, object]] = listed.json()["items"]
        return next(row for row in rows if row["id"] == invoice_id)

    before = await uk_invoice()
    us_listed = (await simulated.get("/dev/accountant/invoices", headers=us)).json()
    assert us_listed["realm_id"] == US_REALM
    assert "UK-ONLY-1" not in {row["doc_number"] for row in us_listed["items"]}
    await simulated.post(void_url, headers=us)
    await simulated.post(
        "/dev/accountant/payments",
        json={"invoice_id": invoice_id, "amount": "10.00"},
        headers=us,
    )
    stranger = await simulated.post(void_url, headers=bearer(make_token("org_none")))
    assert stranger.status_code == 409
    assert stranger.json()["code"] == "not_connected"
    assert await uk_invoice() == before

    assert (await simulated.post(void_url)).status_code == 401
    bad_id = await simulated.post("/dev/accountant/invoices/1%20OR%201/void", headers=uk)
    assert bad_id.status_code == 422
    assert [error["field"] for error in bad_id.json()["errors"]] == ["invoice_id"]

    voided = await simulated.post(void_url, headers=uk)
    assert voided.status_code == 204, voided.text
    after = await uk_invoice()
    assert (after["voided"], after["balance"], after["total"]) == (True, "0.00", "0.00")
    again = await simulated.post(void_url, headers=uk)
    assert again.status_code == 422
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "quickbooks_refused"
    assert [error["field"] for error in again.json()["errors"]] == ["invoice_id"]
    assert again.json()["detail"]
    unknown = await simulated.post("/dev/accountant/invoices/999999/void", headers=uk)
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "quickbooks_refused"
    # The problem names the field at fault: here the invoice, not the amount.
    unpaid = await simulated.post(
        "/dev/accountant/payments", json={"invoice_id": "999999", "amount": "1.00"}, headers=uk
    )
    assert unpaid.status_code == 422
    assert [error["field"] for error in unpaid.json()["errors"]] == ["invoice_id"]


async def test_the_accountant_panel_refuses_when_qbsync_talks_to_intuit(
    key_prefix: str, db: Database, redis: ArqRedis, make_token: TokenFactory
) -> None:
    settings = Settings(
        env="test",
        redis={"queue_name": f"{key_prefix}:intuit", "key_prefix": f"{key_prefix}:intuit"},
        intuit={"environment": "sandbox"},
    )
    app = create_app(settings, database=db, redis=redis)
    headers = bearer(make_token("org_intuit"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            answers = [
                await client.get("/dev/accountant/invoices", headers=headers),
                await client.post(
                    "/dev/accountant/payments",
                    json={"invoice_id": "1", "amount": "1.00"},
                    headers=headers,
                ),
                await client.delete("/dev/accountant/payments/1", headers=headers),
                await client.post("/dev/accountant/invoices/1/void", headers=headers),
            ]
    for answer in answers:
        assert answer.status_code == 409
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "simulator_not_in_use"


def _delivery(org_id: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": "quickbooks.record.synced",
            "organization_id": org_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {"kind": "invoice", "platform_id": "inv_1"},
        }
    ).encode()


async def test_a_replayed_delivery_is_acknowledged_and_stored_once(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    """A retry or a replay of the same signed bytes (same `webhook-id`) is one event; the next
    delivery, with an id of its own, is stored."""
    body = _delivery("org_replay", "evt_replay")
    headers = _signed(EVENTS_SECRET, body)
    answers = [
        await client.post("/dev/platform/events", content=body, headers=headers) for _ in range(3)
    ]
    assert [answer.status_code for answer in answers] == [204, 204, 204]
    following = _delivery("org_replay", "evt_replay_2")
    answer = await client.post(
        "/dev/platform/events", content=following, headers=_signed(EVENTS_SECRET, following)
    )
    assert answer.status_code == 204
    listed = await client.get("/dev/platform/events", headers=bearer(make_token("org_replay")))
    assert [event["id"] for event in listed.json()["items"]] == ["evt_replay_2", "evt_replay"]


@pytest.mark.parametrize(
    "signature", ["garbage", "v1", "v1,not-base64!", "v2,abc v1,", "v1," + "A" * 5000]
)
async def test_a_malformed_signature_is_a_401_not_a_crash(
    client: httpx.AsyncClient, make_token: TokenFactory, signature: str
) -> None:
    """S3 for the dev receiver: nothing stored."""
    body = _delivery("org_malformed", "evt_malformed")
    headers = _signed(EVENTS_SECRET, body) | {"webhook-signature": signature}
    answer = await client.post("/dev/platform/events", content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "invalid_signature"
    listed = await client.get("/dev/platform/events", headers=bearer(make_token("org_malformed")))
    assert listed.json() == {"items": []}


async def test_an_oversized_delivery_is_refused_unread(
    client: httpx.AsyncClient, make_token: TokenFactory, settings: Settings
) -> None:
    """S8: the body limit answers before the signature is checked or anything stored."""
    document = json.loads(_delivery("org_big", "evt_big"))
    document["data"]["padding"] = "x" * settings.max_body_bytes
    body = json.dumps(document).encode()
    answer = await client.post(
        "/dev/platform/events", content=body, headers=_signed(EVENTS_SECRET, body)
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    listed = await client.get("/dev/platform/events", headers=bearer(make_token("org_big")))
    assert listed.json() == {"items": []}
