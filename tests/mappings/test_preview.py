"""The dry-run preview over HTTP against the simulator: matching, mappings, QuickBooks' totals
beside the platform's, blockers, and proof that nothing was written anywhere."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from qbsync.db import Database
from qbsync.models import EntityMapping, MappingKind, MappingSource
from qbsync.models.base import utcnow
from qbsync.simulator.ledger import WriteRequest
from tests.conftest import TokenFactory, bearer
from tests.connections.conftest import OTHER_US_REALM, Consent
from tests.mappings.conftest import Org, fields, problem
from tests.mappings.previews import ACME, invoice_of, line_of, preview, uk_mapped


async def test_a_one_cent_rounding_difference_is_shown_on_the_uk_company(uk: Org) -> None:
    """Three lines of 0.33 at 20 %: the platform rounds per line (0.21), QuickBooks per rate."""
    await uk_mapped(uk)
    invoice = invoice_of(
        "inv_1",
        ACME,
        [line_of("0.33"), line_of("0.33"), line_of("0.33")],
        subtotal="0.99",
        tax_total="0.21",
        total="1.20",
    )
    result = await preview(uk, {"invoices": [invoice]})
    planned = result["invoices"][0]
    assert planned["status"] == "ready"
    assert planned["global_tax_calculation"] == "TaxExcluded"
    assert planned["customer"]["action"] == "link"
    assert planned["customer"]["customer"]["display_name"] == "Acme Ltd"
    assert planned["quickbooks_totals"]["tax_total"] == "0.20"
    assert planned["quickbooks_totals"]["total"] == "1.19"
    assert [line["tax_code"]["name"] for line in planned["lines"]] == ["20.0% S"] * 3
    assert [line["item"]["name"] for line in planned["lines"]] == ["Consulting"] * 3
    differences = {d["field"]: d for d in planned["differences"]}
    assert set(differences) == {"tax_total", "total"}
    assert differences["tax_total"]["platform"] == "0.21"
    assert differences["tax_total"]["quickbooks"] == "0.20"
    assert "Rounding" in differences["tax_total"]["reason"]


async def test_a_tax_inclusive_invoice_is_computed_as_quickbooks_does(uk: Org) -> None:
    await uk_mapped(uk)
    invoice = invoice_of(
        "inv_2",
        ACME,
        [line_of("120.00"), line_of("10.01")],
        subtotal="108.34",
        tax_total="21.67",
        total="130.01",
        amounts_are="tax_inclusive",
    )
    planned = (await preview(uk, {"invoices": [invoice]}))["invoices"][0]
    assert planned["global_tax_calculation"] == "TaxInclusive"
    totals = planned["quickbooks_totals"]
    assert (totals["subtotal"], totals["tax_total"], totals["total"]) == (
        "108.34",
        "21.67",
        "130.01",
    )
    assert planned["differences"] == []
    assert [line["amount"] for line in planned["lines"]] == ["120.00", "10.01"]
    assert totals["tax_lines"][0]["percent"] == "20"


async def test_an_unmapped_tax_rate_blocks_and_suggests_codes(uk: Org) -> None:
    await uk_mapped(uk)
    invoice = invoice_of(
        "inv_3",
        ACME,
        [line_of("100.00"), line_of("100.00", tax="tr_vat5")],
        subtotal="200.00",
        tax_total="25.00",
        total="225.00",
    )
    result = await preview(
        uk,
        {
            "tax_rates": [
                {"id": "tr_vat20", "name": "VAT 20%", "rate": "20.00"},
                {"id": "tr_vat5", "name": "VAT 5%", "rate": "5.00"},
            ],
            "invoices": [invoice],
        },
    )
    rates = {rate["platform_id"]: rate for rate in result["tax_rates"]}
    assert rates["tr_vat20"]["status"] == "mapped"
    assert rates["tr_vat5"]["status"] == "missing"
    assert [code["name"] for code in rates["tr_vat5"]["candidates"]] == ["5.0% R"]
    planned = result["invoices"][0]
    assert planned["status"] == "blocked"
    assert [(b["code"], b["field"]) for b in planned["blocked_by"]] == [
        ("unmapped_tax_rate", "lines.1.tax_rate_id")
    ]
    assert planned["quickbooks_totals"] is None
    assert result["summary"]["tax_rates"] == {"mapped": 1, "missing": 1, "not_needed": 0}
    assert result["summary"]["invoices"] == {"ready": 0, "blocked": 1, "skipped": 0}


async def test_an_ambiguous_client_blocks_its_invoice_and_is_never_linked(us: Org) -> None:
    us.in_quickbooks(
        "Customer",
        {
            "DisplayName": "Cool Cars Racing",
            "PrimaryEmailAddr": {"Address": "cool_cars@intuit.test"},
        },
    )
    client = {"id": "cl_cool", "name": "Cool Cars Inc", "email": "COOL_CARS@intuit.test"}
    invoice = invoice_of(
        "inv_4",
        client,
        [line_of("100.00", service="svc_x", tax=None)],
        subtotal="100.00",
        tax_total="0.00",
        total="100.00",
        currency="USD",
    )
    result = await preview(us, {"clients": [client], "invoices": [invoice]})
    [decision] = result["clients"]
    assert decision["action"] == "ambiguous"
    assert decision["rule"] == "email"
    assert decision["customer"] is None
    assert {c["display_name"] for c in decision["candidates"]} == {"Cool Cars", "Cool Cars Racing"}
    planned = result["invoices"][0]
    assert "ambiguous_customer" in [b["code"] for b in planned["blocked_by"]]
    assert result["preview_id"]
    applied = await us.post(
        "preview/apply", {"preview_id": result["preview_id"], "client_ids": ["cl_cool"]}
    )
    assert fields(problem(applied, 422, "not_a_proposed_link")) == ["client_ids.0"]


async def test_each_matching_rule_shows_its_rule_and_confidence(uk: Org) -> None:
    clients = [
        {"id": "cl_email", "name": "Someone Else", "email": "ACCOUNTS@acme.test"},
        {"id": "cl_name", "name": "BRIGHTON BAKERS LIMITED"},
        {"id": "cl_inactive", "name": "Old Client", "email": "ap@old-client.test"},
        {"id": "cl_near", "name": "Cambrige Cyclist"},
        {"id": "cl_new", "name": "Nobody Known"},
    ]
    result = await preview(uk, {"clients": clients})
    by_id = {client["platform_id"]: client for client in result["clients"]}
    assert (by_id["cl_email"]["action"], by_id["cl_email"]["rule"]) == ("link", "email")
    assert (by_id["cl_name"]["action"], by_id["cl_name"]["rule"]) == ("link", "name")
    assert by_id["cl_name"]["customer"]["display_name"] == "Brighton Bakers Ltd"
    assert by_id["cl_email"]["confidence"] > by_id["cl_name"]["confidence"] > 0
    inactive = by_id["cl_inactive"]
    assert inactive["action"] == "ambiguous"
    assert inactive["customer"] is None
    assert [c["active"] for c in inactive["candidates"]] == [False]
    near = by_id["cl_near"]
    assert (near["action"], near["customer"]) == ("create", None)
    assert [c["display_name"] for c in near["candidates"]] == ["Cambridge Cyclists"]
    assert by_id["cl_new"]["action"] == "create"
    assert result["summary"]["clients"] == {"link": 2, "create": 2, "ambiguous": 1, "skip": 0}


async def test_match_only_never_creates(uk: Org) -> None:
    assert (await uk.put("settings", {"customer_sync_mode": "match_only"})).status_code == 200
    client = {"id": "cl_new", "name": "Nobody Known"}
    invoice = invoice_of(
        "inv_5", client, [line_of("10.00")], subtotal="10.00", tax_total="2.00", total="12.00"
    )
    await uk_mapped(uk)
    result = await preview(uk, {"clients": [client], "invoices": [invoice]})
    assert result["clients"][0]["action"] == "skip"
    assert [b["code"] for b in result["invoices"][0]["blocked_by"]] == ["customer_not_matched"]


async def test_the_preview_writes_nothing_to_quickbooks_or_the_mappings(
    uk: Org, db: Database
) -> None:
    await uk_mapped(uk)
    async with db.sessions() as session:
        mappings_before = await session.scalar(select(func.count()).select_from(EntityMapping))
    writes_before = uk.writes()
    body = {
        "clients": [ACME, {"id": "cl_new", "name": "Nobody Known"}],
        "services": [{"id": "svc_new", "name": "Audit", "unit_price": "500.00"}],
        "tax_rates": [{"id": "tr_vat20", "name": "VAT", "rate": "20.00"}],
        "invoices": [
            invoice_of(
                "inv_6",
                ACME,
                [line_of("50.00")],
                subtotal="50.00",
                tax_total="10.00",
                total="60.00",
            )
        ],
    }
    await preview(uk, body)
    assert uk.writes() == writes_before
    async with db.sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(EntityMapping)) == mappings_before
        )


async def test_apply_stores_the_confirmed_links_as_matched(
    uk: Org, make_token: TokenFactory, consent: Consent
) -> None:
    clients = [ACME, {"id": "cl_bakers", "name": "Brighton Bakers"}]
    result = await preview(uk, {"clients": clients})
    preview_id = result["preview_id"]
    await consent.connect("org_2", OTHER_US_REALM)
    other = await uk.client.post(
        "/v1/quickbooks/preview/apply",
        json={"preview_id": preview_id, "client_ids": ["cl_acme"]},
        headers=bearer(make_token("org_2")),
    )
    problem(other, 409, "preview_expired")
    applied = await uk.post("preview/apply", {"preview_id": preview_id, "client_ids": ["cl_acme"]})
    assert applied.status_code == 200, applied.text
    [mapping] = applied.json()["applied"]
    assert (mapping["platform_id"], mapping["source"], mapping["qbo_name"]) == (
        "cl_acme",
        "matched",
        "Acme Ltd",
    )
    again = await uk.post(
        "preview/apply", {"preview_id": preview_id, "client_ids": ["cl_acme", "cl_bakers"]}
    )
    body = again.json()
    assert [m["platform_id"] for m in body["applied"]] == ["cl_bakers"]
    assert [(s["platform_id"], s["code"]) for s in body["skipped"]] == [
        ("cl_acme", "already_linked")
    ]
    listed = (await uk.get("mappings/clients")).json()["items"]
    assert {(m["platform_id"], m["source"]) for m in listed} == {
        ("cl_acme", "matched"),
        ("cl_bakers", "matched"),
    }
    # A later preview shows them as mapped links.
    later = await preview(uk, {"clients": clients})
    assert {c["rule"] for c in later["clients"]} == {"mapping"}


async def test_apply_refuses_an_unknownpreview(uk: Org) -> None:
    problem(
        await uk.post("preview/apply", {"preview_id": "nope", "client_ids": ["cl_1"]}),
        409,
        "preview_expired",
    )


async def test_services_and_us_tax_rates_in_thepreview(us: Org) -> None:
    design = us.qbo_id("Item", "Design")
    await us.put("mappings/services/svc_design", {"qbo_id": design})
    body = {
        "services": [
            {"id": "svc_design", "name": "Design work"},
            {"id": "svc_new", "name": "Brand new service"},
            {"id": "svc_hours", "name": "Hours"},
        ],
        "tax_rates": [
            {"id": "tr_ca", "name": "CA sales tax", "rate": "8.25"},
            {"id": "tr_zero", "name": "Exempt", "rate": "0"},
        ],
    }
    result = await preview(us, body)
    services = {s["platform_id"]: s for s in result["services"]}
    assert (services["svc_design"]["status"], services["svc_design"]["item"]["name"]) == (
        "mapped",
        "Design",
    )
    assert services["svc_new"]["status"] == "missing"
    assert services["svc_new"]["would_create"] is False  # no default income account yet
    assert [c["name"] for c in services["svc_hours"]["candidates"]] == ["Hours"]
    rates = {r["platform_id"]: r for r in result["tax_rates"]}
    assert (rates["tr_ca"]["status"], rates["tr_ca"]["tax_code"]["qbo_id"]) == ("not_needed", "TAX")
    assert rates["tr_zero"]["tax_code"]["qbo_id"] == "NON"
    await us.put("settings", {"default_income_account_id": us.qbo_id("Account", "Services")})
    again = {s["platform_id"]: s for s in (await preview(us, body))["services"]}
    assert again["svc_new"]["would_create"] is True
    assert again["svc_new"]["income_account"]["name"] == "Services"


async def test_a_us_invoice_keeps_the_platform_tax_total(us: Org) -> None:
    await us.put("settings", {"default_income_account_id": us.qbo_id("Account", "Services")})
    client = {"id": "cl_cool", "name": "Cool Cars", "email": "cool_cars@intuit.test"}
    invoice = invoice_of(
        "inv_us",
        client,
        [
            line_of("100.00", service="svc_a", tax="tr_ca"),
            line_of("20.00", service="svc_b", tax=None),
        ],
        subtotal="120.00",
        tax_total="8.25",
        total="128.25",
        currency="USD",
    )
    result = await preview(
        us, {"tax_rates": [{"id": "tr_ca", "name": "CA", "rate": "8.25"}], "invoices": [invoice]}
    )
    planned = result["invoices"][0]
    assert planned["status"] == "ready", planned["blocked_by"]
    assert planned["global_tax_calculation"] is None
    assert [line["tax_code"]["qbo_id"] for line in planned["lines"]] == ["TAX", "NON"]
    assert planned["quickbooks_totals"]["total"] == "128.25"
    assert planned["differences"] == []
    assert planned["doc_number"] is None  # the US company numbers invoices itself


async def test_invoice_checks_currency_numbers_and_start_date(uk: Org) -> None:
    await uk_mapped(uk)
    assert (await uk.put("settings", {"sync_start_date": "2026-11-01"})).status_code == 200
    invoices = [
        invoice_of(
            "inv_usd",
            ACME,
            [line_of("10.00")],
            subtotal="10.00",
            tax_total="2.00",
            total="12.00",
            currency="USD",
        ),
        invoice_of(
            "inv_long",
            ACME,
            [line_of("10.00")],
            subtotal="10.00",
            tax_total="2.00",
            total="12.00",
            number="X" * 22,
        ),
        invoice_of(
            "inv_old",
            ACME,
            [line_of("10.00")],
            subtotal="10.00",
            tax_total="2.00",
            total="12.00",
            issue_date="2026-10-31",
        ),
        invoice_of(
            "inv_free",
            ACME,
            [line_of("10.00", tax=None)],
            subtotal="10.00",
            tax_total="0.00",
            total="10.00",
        ),
    ]
    planned = {i["platform_id"]: i for i in (await preview(uk, {"invoices": invoices}))["invoices"]}
    assert [b["code"] for b in planned["inv_usd"]["blocked_by"]] == ["currency_not_enabled"]
    assert [b["code"] for b in planned["inv_long"]["blocked_by"]] == ["doc_number_too_long"]
    assert planned["inv_old"]["status"] == "skipped"
    assert [b["code"] for b in planned["inv_free"]["blocked_by"]] == ["untaxed_line_needs_tax_code"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"clients": [{"id": "c", "name": "X", "email": "not-an-email"}]}, "clients.0.email"),
        ({"services": [{"id": "s", "name": "S", "unit_price": 12.5}]}, "services.0.unit_price"),
        ({"tax_rates": [{"id": "t", "name": "T", "rate": "120"}]}, "tax_rates.0.rate"),
        ({"invoices": [{"id": "i"}]}, "invoices.0.status"),
        ({"widgets": []}, "widgets"),
        ({"clients": [{"id": f"c{n}", "name": "X"} for n in range(501)]}, "clients"),
    ],
)
async def test_a_bad_preview_body_names_its_field(
    uk: Org, body: dict[str, Any], field: str
) -> None:
    assert field in fields(problem(await uk.post("preview", body), 422, "validation_error"))


async def test_duplicate_ids_are_refused(uk: Org) -> None:
    body = {"clients": [ACME, ACME]}
    assert fields(problem(await uk.post("preview", body), 422, "duplicate_id")) == ["clients.1.id"]


async def test_the_preview_needs_a_connection(org: Org) -> None:
    problem(await org.post("preview", {"clients": [ACME]}), 409, "not_connected")


async def test_a_customer_created_after_the_list_was_cached_is_found_by_its_mapping(
    uk: Org, db: Database
) -> None:
    """The push creates customers without re-reading the shared list; a client mapped to one of
    them is matched by the preview, not reported missing (one read of the list settles it)."""
    client = {"id": "cl_fresh", "name": "Fresh Client Ltd"}
    first = await preview(uk, {"clients": [client]})
    assert first["clients"][0]["action"] == "create"
    created = uk.simulator.state.ledger(uk.realm_id).create(
        "Customer", WriteRequest({"DisplayName": "Fresh Client Ltd"})
    )
    async with db.sessions() as session:  # the mapping the push stores with its create
        session.add(
            EntityMapping(
                id=uuid.uuid4(),
                org_id="org_1",
                realm_id=uk.realm_id,
                kind=MappingKind.CLIENT,
                platform_id="cl_fresh",
                qbo_id=created["Id"],
                qbo_name="Fresh Client Ltd",
                source=MappingSource.CREATED,
                details={},
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        await session.commit()
    calls_before = uk.calls()
    result = await preview(uk, {"clients": [client]})
    assert (result["clients"][0]["action"], result["clients"][0]["rule"]) == ("link", "mapping")
    assert result["clients"][0]["customer"]["qbo_id"] == created["Id"]
    assert uk.calls() - calls_before == 1, "one read of the customer list, no more"
    again = uk.calls()
    await preview(uk, {"clients": [client]})
    assert uk.calls() == again, "the list read again is cached for the next preview"
