"""Test connection's tax warnings read the org's real mappings, at no extra QuickBooks call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from qbsync.db import Database
from qbsync.models import Connection
from tests.mappings.conftest import Org


async def _warnings(org: Org) -> dict[str, str]:
    response = await org.post("test-connection", {})
    assert response.status_code == 200, response.text
    checks: list[dict[str, Any]] = response.json()["checks"]
    return {check["name"]: check["message"] for check in checks if check["outcome"] == "warn"}


async def test_no_tax_mapping_is_a_warning_until_one_is_made(uk: Org) -> None:
    assert "tax_rates_mapped" in await _warnings(uk)
    mapped = await uk.put("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20"})
    assert mapped.status_code == 200, mapped.text
    assert "tax_rates_mapped" not in await _warnings(uk)


async def test_a_mapping_to_a_code_made_inactive_is_named(uk: Org) -> None:
    for platform_id, code, rate in (("tr_vat20", "3", "20"), ("tr_vat5", "4", "5")):
        mapped = await uk.put(f"mappings/tax-rates/{platform_id}", {"qbo_id": code, "rate": rate})
        assert mapped.status_code == 200, mapped.text
    uk.simulator.state.company(uk.realm_id).objects["TaxCode"]["3"]["Active"] = False
    before = uk.calls()
    warnings = await _warnings(uk)
    assert "tr_vat20 → 20.0% S" in warnings["tax_rates_mapped"]
    assert "tr_vat5" not in warnings["tax_rates_mapped"]
    # Still one batch call: the codes came with the permission check.
    assert uk.calls() - before == 1


async def test_a_us_company_needs_no_tax_mapping_whatever_its_sales_tax(
    us: Org, db: Database
) -> None:
    assert "tax_rates_mapped" not in await _warnings(us)
    async with db.sessions() as session:
        await session.execute(update(Connection).values(automated_sales_tax=False))
        await session.commit()
    assert "tax_rates_mapped" not in await _warnings(us)
