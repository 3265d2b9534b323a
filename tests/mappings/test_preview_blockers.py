"""What would stop the push, found by the preview before anything is written: each blocker on
the company where QuickBooks would refuse it, and the links apply may and may not store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from fastapi import FastAPI
from sqlalchemy import select, update

from qbsync.db import Database
from qbsync.main import create_app
from qbsync.models import Connection, EntityMapping, RecordKind, RecordStatus, SyncRecord
from qbsync.settings import Settings
from tests.conftest import bearer
from tests.connections.committed import CommittedApp
from tests.connections.conftest import UK_REALM, Consent
from tests.mappings.conftest import Org, fields, problem
from tests.mappings.previews import ACME, invoice_of, line_of, preview, ten_pounds, uk_mapped


def _codes(invoice: dict[str, Any]) -> list[str]:
    return [blocker["code"] for blocker in invoice["blocked_by"]]


async def test_a_us_invoice_with_tax_inclusive_amounts_is_blocked(us: Org) -> None:
    client = {"id": "cl_cool", "name": "Cool Cars", "email": "cool_cars@intuit.test"}
    await us.put("settings", {"default_income_account_id": us.qbo_id("Account", "Services")})
    invoice = invoice_of(
        "inv_us",
        client,
        [line_of("108.25", service="svc_a", tax="tr_ca")],
        subtotal="100.00",
        tax_total="8.25",
        total="108.25",
        currency="USD",
        amounts_are="tax_inclusive",
    )
    body = {"tax_rates": [{"id": "tr_ca", "name": "CA", "rate": "8.25"}], "invoices": [invoice]}
    planned = (await preview(us, body))["invoices"][0]
    assert _codes(planned) == ["tax_inclusive_not_supported"]
    assert planned["quickbooks_totals"] is None


async def test_a_us_company_on_the_older_sales_tax_maps_to_taxable_or_not_too(
    us: Org, db: Database
) -> None:
    async with db.sessions() as session:
        await session.execute(update(Connection).values(automated_sales_tax=False))
        await session.commit()
    problem(
        await us.put("mappings/tax-rates/tr_ca", {"qbo_id": "2"}), 422, "qbo_reference_wrong_type"
    )
    assert (await us.put("mappings/tax-rates/tr_ca", {"qbo_id": "TAX"})).status_code == 200


async def test_a_new_customer_named_like_a_vendor_is_told_it_gets_a_suffix(uk: Org) -> None:
    result = await preview(uk, {"clients": [{"id": "cl_rail", "name": "Northern Rail"}]})
    [client] = result["clients"]
    assert client["action"] == "create"
    assert "a vendor" in client["note"]
    assert "suffix" in client["note"]


async def test_an_unmapped_service_whose_name_an_item_holds_blocks(uk: Org) -> None:
    await uk_mapped(uk)
    await uk.put(
        "settings", {"default_income_account_id": uk.qbo_id("Account", "Consulting Income")}
    )
    body = {
        "services": [{"id": "svc_training", "name": "training"}],
        "invoices": [
            invoice_of(
                "inv_t",
                ACME,
                [line_of("400.00", service="svc_training")],
                subtotal="400.00",
                tax_total="80.00",
                total="480.00",
            )
        ],
    }
    planned = (await preview(uk, body))["invoices"][0]
    assert _codes(planned) == ["item_name_taken"]
    assert planned["blocked_by"][0]["field"] == "lines.0.service_id"


async def test_an_invoice_number_quickbooks_or_the_preview_already_has_blocks(uk: Org) -> None:
    await uk_mapped(uk)
    _invoice_in_quickbooks(uk, "INV-7")
    invoices = [
        ten_pounds("a", ACME, number="inv-7"),
        ten_pounds("b", ACME, number="INV-8"),
        ten_pounds("c", ACME, number="INV-8"),
    ]
    planned = {i["platform_id"]: i for i in (await preview(uk, {"invoices": invoices}))["invoices"]}
    assert _codes(planned["a"]) == ["duplicate_doc_number"]
    assert _codes(planned["b"]) == []
    assert _codes(planned["c"]) == ["duplicate_doc_number"]
    assert planned["c"]["status"] == "blocked"


async def test_an_invoice_below_zero_is_blocked(uk: Org) -> None:
    await uk_mapped(uk)
    invoice = invoice_of(
        "neg", ACME, [line_of("-100.00")], subtotal="-100.00", tax_total="-20.00", total="-120.00"
    )
    assert _codes((await preview(uk, {"invoices": [invoice]}))["invoices"][0]) == ["negative_total"]


async def test_clients_named_only_on_invoices_are_listed_and_can_be_linked(uk: Org) -> None:
    await uk_mapped(uk)
    invoice = ten_pounds("inv", ACME)
    result = await preview(uk, {"invoices": [invoice]})
    [client] = result["clients"]
    assert (client["platform_id"], client["listed"], client["action"]) == ("cl_acme", False, "link")
    assert result["summary"]["clients"]["link"] == 1
    applied = await uk.post(
        "preview/apply", {"preview_id": result["preview_id"], "client_ids": ["cl_acme"]}
    )
    assert applied.status_code == 200, applied.text
    assert [m["platform_id"] for m in applied.json()["applied"]] == ["cl_acme"]


async def test_apply_skips_a_customer_made_inactive_since_thepreview(uk: Org) -> None:
    result = await preview(uk, {"clients": [ACME]})
    uk.in_quickbooks("Customer", {"Id": uk.qbo_id("Customer", "Acme Ltd"), "Active": False})
    applied = await uk.post(
        "preview/apply", {"preview_id": result["preview_id"], "client_ids": ["cl_acme"]}
    )
    body = applied.json()
    assert body["applied"] == []
    assert [s["code"] for s in body["skipped"]] == ["qbo_reference_wrong_type"]


async def test_apply_never_overwrites_a_mapping_made_at_the_same_moment(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """A manual mapping and a confirmed link of one client race: the manual one always stays."""
    org_id = f"{prefix}apply"
    browser = Consent(live.client, consent.simulator, consent.make_token)
    await browser.connect(org_id, UK_REALM)
    headers = bearer(consent.make_token(org_id))
    customers = consent.simulator.state.company(UK_REALM).objects["Customer"].values()
    bakers = next(
        str(row["Id"]) for row in customers if row["DisplayName"] == "Brighton Bakers Ltd"
    )
    for attempt in range(3):
        client_id = f"cl_acme_{attempt}"
        client = {**ACME, "id": client_id}
        preview = await live.client.post(
            "/v1/quickbooks/preview", json={"clients": [client]}, headers=headers
        )
        preview_id = preview.json()["preview_id"]
        async with live.db.sessions() as holder, holder.begin():
            await holder.execute(
                select(Connection.id).where(Connection.org_id == org_id).with_for_update()
            )
            racing = [
                asyncio.create_task(
                    live.client.post(
                        "/v1/quickbooks/preview/apply",
                        json={"preview_id": preview_id, "client_ids": [client_id]},
                        headers=headers,
                    )
                ),
                asyncio.create_task(
                    live.client.put(
                        f"/v1/quickbooks/mappings/clients/{client_id}",
                        json={"qbo_id": bakers},
                        headers=headers,
                    )
                ),
            ]
            await asyncio.sleep(0.3)
        applied, manual = await asyncio.gather(*racing)
        assert manual.status_code == 200, manual.text
        assert applied.status_code == 200, applied.text
        async with live.db.sessions() as session:
            stored = await session.scalar(
                select(EntityMapping).where(
                    EntityMapping.org_id == org_id, EntityMapping.platform_id == client_id
                )
            )
        assert stored is not None
        assert (stored.qbo_id, stored.source.value) == (bakers, "manual")
        freed = await live.client.delete(
            f"/v1/quickbooks/mappings/clients/{client_id}", headers=headers
        )
        assert freed.status_code == 204


async def test_apply_without_redis_is_a_503(uk: Org, settings: Settings, db: Database) -> None:
    result = await preview(uk, {"clients": [ACME]})
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app = create_app(settings, database=db, redis=dead)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
            response = await client.post(
                "/v1/quickbooks/preview/apply",
                json={"preview_id": result["preview_id"], "client_ids": ["cl_acme"]},
                headers=uk.headers,
            )
    problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"]
    await dead.aclose()


@pytest.mark.parametrize(
    "value", ["1_000", "1e3", "+5", "\u0661\u0660", " 10", "NaN", "10.1234567"]
)
async def test_only_plain_decimal_strings_are_money(uk: Org, value: str) -> None:
    body = {"services": [{"id": "s", "name": "S", "unit_price": value}]}
    response = await uk.post("preview", body)
    assert (
        problem(response, 422, "validation_error")["errors"][0]["field"] == "services.0.unit_price"
    )


async def test_a_line_too_large_for_quickbooks_is_refused(uk: Org) -> None:
    invoice = invoice_of(
        "big",
        ACME,
        [line_of("99999", quantity="99999999999")],
        subtotal="1.00",
        tax_total="0.00",
        total="1.00",
    )
    problem(await uk.post("preview", {"invoices": [invoice]}), 422, "validation_error")


async def test_auto_create_links_nobody_and_shows_the_match_as_a_candidate(uk: Org) -> None:
    await uk_mapped(uk)
    assert (await uk.put("settings", {"customer_sync_mode": "auto_create"})).status_code == 200
    invoice = invoice_of(
        "inv",
        {**ACME, "id": "cl_auto"},
        [line_of("10.00")],
        subtotal="10.00",
        tax_total="2.00",
        total="12.00",
        currency="GBP",
    )
    result = await preview(uk, {"invoices": [invoice]})
    [client] = result["clients"]
    assert (client["action"], client["customer"]) == ("create", None)
    assert client["candidates"][0]["display_name"] == "Acme Ltd"
    assert "creates a customer" in client["candidates"][0]["reason"]
    planned = result["invoices"][0]
    assert planned["customer"]["customer"] is None
    assert planned["status"] == "ready", planned["blocked_by"]


async def test_an_unusable_default_income_account_creates_no_item(uk: Org) -> None:
    income = uk.qbo_id("Account", "Consulting Income")
    assert (await uk.put("settings", {"default_income_account_id": income})).status_code == 200
    uk.in_quickbooks("Account", {"Id": income, "Active": False})
    await uk.put("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20"})
    body = {
        "services": [{"id": "svc_new", "name": "Audit"}],
        "invoices": [ten_pounds("inv", ACME, service="svc_new")],
    }
    result = await preview(uk, body)
    assert result["services"][0]["would_create"] is False
    [blocker] = result["invoices"][0]["blocked_by"]
    assert blocker["code"] == "no_income_account"
    assert "inactive" in blocker["message"]


async def test_a_service_mapped_to_an_item_no_longer_a_service_blocks(
    uk: Org, app: FastAPI
) -> None:
    await uk_mapped(uk)
    uk.simulator.state.company(uk.realm_id).objects["Item"][uk.qbo_id("Item", "Consulting")][
        "Type"
    ] = "Inventory"
    await app.state.reference_cache.drop(uk.realm_id, "Item")  # QuickBooks reported it
    invoice = ten_pounds("inv", ACME)
    assert _codes((await preview(uk, {"invoices": [invoice]}))["invoices"][0]) == [
        "mapped_item_unusable"
    ]


async def test_a_line_whose_code_no_longer_charges_the_platform_rate_blocks(uk: Org) -> None:
    await uk_mapped(uk)
    body = {
        "tax_rates": [{"id": "tr_vat20", "name": "VAT", "rate": "17.5"}],
        "invoices": [
            invoice_of(
                "inv", ACME, [line_of("10.00")], subtotal="10.00", tax_total="1.75", total="11.75"
            )
        ],
    }
    result = await preview(uk, body)
    assert result["tax_rates"][0]["status"] == "missing"
    assert _codes(result["invoices"][0]) == ["tax_rate_mismatch"]


async def test_names_are_written_as_quickbooks_holds_them_and_clash_inside_a_preview(
    uk: Org,
) -> None:
    await uk_mapped(uk)
    await uk.put(
        "settings", {"default_income_account_id": uk.qbo_id("Account", "Consulting Income")}
    )
    body = {
        "clients": [{"id": "cl_smith", "name": "Smith: Plumbing"}],
        "services": [
            {"id": "svc_logo", "name": "Design: logo"},
            {"id": "svc_w1", "name": "Workshop"},
            {"id": "svc_w2", "name": "workshop"},
        ],
        "invoices": [ten_pounds("inv", ACME, service="svc_w2")],
    }
    result = await preview(uk, body)
    assert '"Smith - Plumbing"' in result["clients"][0]["note"]
    services = {s["platform_id"]: s for s in result["services"]}
    assert '"Design - logo"' in services["svc_logo"]["note"]
    assert services["svc_w1"]["would_create"] is True
    assert services["svc_w2"]["would_create"] is False
    assert _codes(result["invoices"][0]) == ["item_name_taken"]


async def test_a_quickbooks_total_below_zero_blocks_whatever_the_platform_says(uk: Org) -> None:
    await uk_mapped(uk)
    invoice = invoice_of(
        "neg",
        ACME,
        [line_of("10.00"), line_of("-15.00")],
        subtotal="0.00",
        tax_total="0.00",
        total="0.00",
    )
    assert "negative_total" in _codes((await preview(uk, {"invoices": [invoice]}))["invoices"][0])


async def test_a_number_is_checked_against_each_invoices_own_push(uk: Org, db: Database) -> None:
    await uk_mapped(uk)
    created = _invoice_in_quickbooks(uk, "INV-1")
    async with db.sessions() as session:
        session.add(
            SyncRecord(
                org_id="org_1",
                kind=RecordKind.INVOICE,
                platform_id="inv_a",
                snapshot={},
                status=RecordStatus.SYNCED,
                realm_id=uk.realm_id,
                qbo_id=created["Id"],
            )
        )
        await session.commit()
    own = ten_pounds("inv_a", ACME, number="INV-1")
    other = ten_pounds("inv_b", ACME, number="INV-1")
    renumbered = {**own, "number": "INV-2"}
    alone = (await preview(uk, {"invoices": [own]}))["invoices"][0]
    assert _codes(alone) == []
    together = (await preview(uk, {"invoices": [renumbered, other]}))["invoices"]
    assert [_codes(i) for i in together] == [[], ["duplicate_doc_number"]]


async def test_a_skipped_invoice_reserves_no_number(uk: Org) -> None:
    await uk_mapped(uk)
    assert (await uk.put("settings", {"sync_start_date": "2026-06-01"})).status_code == 200
    old = ten_pounds("a", ACME, number="INV-9", issue_date="2026-01-01")
    new = ten_pounds("b", ACME, number="INV-9")
    planned = (await preview(uk, {"invoices": [old, new]}))["invoices"]
    assert [p["status"] for p in planned] == ["skipped", "ready"]


def _invoice_in_quickbooks(uk: Org, number: str) -> dict[str, Any]:
    return uk.in_quickbooks(
        "Invoice",
        {
            "CustomerRef": {"value": uk.qbo_id("Customer", "Acme Ltd")},
            "DocNumber": number,
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": "10.00",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": uk.qbo_id("Item", "Consulting")},
                        "Qty": "1",
                        "UnitPrice": "10.00",
                        "TaxCodeRef": {"value": "3"},
                    },
                }
            ],
        },
    )


async def test_a_malformed_body_or_date_names_its_field(uk: Org) -> None:
    broken = await uk.client.post(
        "/v1/quickbooks/preview",
        content=b'{"clients": [',
        headers={**uk.headers, "Content-Type": "application/json"},
    )
    assert problem(broken, 422, "validation_error")["errors"][0]["field"] == "body"
    invoice = invoice_of(
        "inv", ACME, [line_of("1.00")], subtotal="1.00", tax_total="0.20", total="1.20"
    )
    invoice["issue_date"] = 0
    refused = problem(await uk.post("preview", {"invoices": [invoice]}), 422, "validation_error")
    assert refused["errors"][0]["field"] == "invoices.0.issue_date"


@pytest.mark.parametrize("name", ["\x1c", "a\x1fb", "  "])
async def test_a_name_made_of_control_characters_or_spaces_is_refused(uk: Org, name: str) -> None:
    for body, field in (
        ({"clients": [{"id": "c", "name": name}]}, "clients.0.name"),
        ({"services": [{"id": "s", "name": name}]}, "services.0.name"),
    ):
        refused = problem(await uk.post("preview", body), 422, "validation_error")
        assert field in fields(refused)


async def test_an_unlisted_unmapped_service_is_said_to_be_unchecked(uk: Org) -> None:
    await uk_mapped(uk)
    await uk.put(
        "settings", {"default_income_account_id": uk.qbo_id("Account", "Consulting Income")}
    )
    invoice = ten_pounds("inv", ACME, service="svc_unlisted")
    planned = (await preview(uk, {"invoices": [invoice]}))["invoices"][0]
    assert any("could not be checked" in note for note in planned["notes"])


async def test_a_mapped_rate_changed_in_quickbooks_blocks_without_tax_rates(
    uk: Org, app: FastAPI
) -> None:
    """The rate the mapping was checked against stands in for a rate the body leaves out."""
    await uk_mapped(uk)
    company = uk.simulator.state.company(uk.realm_id)
    rate_id = company.objects["TaxCode"]["3"]["SalesTaxRateList"]["TaxRateDetail"][0]["TaxRateRef"][
        "value"
    ]
    company.objects["TaxRate"][rate_id]["RateValue"] = Decimal("17.5")
    await app.state.reference_cache.drop(uk.realm_id, "TaxRate")  # as a QuickBooks report would
    invoice = ten_pounds("inv", ACME)
    planned = (await preview(uk, {"invoices": [invoice]}))["invoices"][0]
    assert _codes(planned) == ["tax_rate_mismatch"]


async def test_two_new_clients_of_one_name_are_told_one_gets_a_suffix(uk: Org) -> None:
    clients = [{"id": "a", "name": "Nobody Known"}, {"id": "b", "name": "NOBODY KNOWN"}]
    first, second = (await preview(uk, {"clients": clients}))["clients"]
    assert first["note"] is None
    assert "'a'" in second["note"]
    assert "suffix" in second["note"]


async def test_two_applies_of_overlapping_links_in_any_order_both_answer(
    live: CommittedApp, consent: Consent, prefix: str
) -> None:
    """Each apply writes its links in one order, so two at once wait for each other, never
    deadlock (which Postgres would break with a 503)."""
    org_id = f"{prefix}order"
    browser = Consent(live.client, consent.simulator, consent.make_token)
    await browser.connect(org_id, UK_REALM)
    headers = bearer(consent.make_token(org_id))
    ledger = consent.simulator.state.ledger(UK_REALM)
    clients = []
    for n in range(60):
        email = f"buyer{n}@order.test"
        ledger.write(
            "Customer",
            None,
            {"DisplayName": f"Order Buyer {n}", "PrimaryEmailAddr": {"Address": email}},
        )
        clients.append({"id": f"cl_{n:02}", "name": f"Someone {n}", "email": email})
    answer = await live.client.post(
        "/v1/quickbooks/preview", json={"clients": clients}, headers=headers
    )
    preview_id = answer.json()["preview_id"]
    ids = [client["id"] for client in clients]
    applies = await asyncio.gather(
        *(
            live.client.post(
                "/v1/quickbooks/preview/apply",
                json={"preview_id": preview_id, "client_ids": order},
                headers=headers,
            )
            for order in (ids, ids[::-1], ids[30:] + ids[:30])
        )
    )
    assert [response.status_code for response in applies] == [200, 200, 200]
    applied = sum(len(response.json()["applied"]) for response in applies)
    assert applied == len(ids)
