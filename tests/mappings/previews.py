"""Platform snapshots and preview calls shared by the preview tests."""

from __future__ import annotations

from typing import Any

from tests.mappings.conftest import Org


def invoice_of(
    invoice_id: str,
    client: dict[str, Any],
    lines: list[dict[str, Any]],
    *,
    subtotal: str,
    tax_total: str,
    total: str,
    amounts_are: str = "tax_exclusive",
    currency: str = "GBP",
    issue_date: str = "2026-11-20",
    number: str | None = None,
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "number": number or f"INV-{invoice_id}",
        "status": "sent",
        "currency": currency,
        "issue_date": issue_date,
        "due_date": "2026-12-20",
        "amounts_are": amounts_are,
        "client": client,
        "lines": lines,
        "subtotal": subtotal,
        "tax_total": tax_total,
        "total": total,
    }


def line_of(
    price: str,
    *,
    quantity: str = "1",
    service: str = "svc_consulting",
    tax: str | None = "tr_vat20",
) -> dict[str, Any]:
    line: dict[str, Any] = {"service_id": service, "quantity": quantity, "unit_price": price}
    if tax is not None:
        line["tax_rate_id"] = tax
    return line


ACME = {"id": "cl_acme", "name": "Acme Ltd", "email": "accounts@acme.test"}


async def uk_mapped(uk: Org) -> None:
    """The UK org's standard VAT rate and its consulting service are mapped."""
    vat = await uk.put("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20.00"})
    assert vat.status_code == 200, vat.text
    service = await uk.put(
        "mappings/services/svc_consulting", {"qbo_id": uk.qbo_id("Item", "Consulting")}
    )
    assert service.status_code == 200, service.text


async def preview(org: Org, body: dict[str, Any]) -> dict[str, Any]:
    response = await org.post("preview", body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ten_pounds(
    invoice_id: str,
    client: dict[str, Any],
    *,
    service: str = "svc_consulting",
    tax: str = "tr_vat20",
    **invoice: Any,
) -> dict[str, Any]:
    """A UK invoice of one 10.00 line at 20 % VAT: 10.00 + 2.00 = 12.00."""
    return invoice_of(
        invoice_id,
        client,
        [line_of("10.00", service=service, tax=tax)],
        subtotal="10.00",
        tax_total="2.00",
        total="12.00",
        **invoice,
    )
