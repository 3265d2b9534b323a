"""Test connection's tax warnings read the org's real mappings, at no extra QuickBooks call."""

from __future__ import annotations

from typing import Any

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
    await uk.put("mappings/tax-rates/tr_vat20", {"qbo_id": "3", "rate": "20"})
    await uk.put("mappings/tax-rates/tr_vat5", {"qbo_id": "4", "rate": "5"})
    uk.simulator.state.company(uk.realm_id).objects["TaxCode"]["3"]["Active"] = False
    before = uk.calls()
    warnings = await _warnings(uk)
    assert "tr_vat20 → 20.0% S" in warnings["tax_rates_mapped"]
    assert "tr_vat5" not in warnings["tax_rates_mapped"]
    # Still one batch call: the codes came with the permission check.
    assert uk.calls() - before == 1


async def test_a_us_company_with_automated_sales_tax_needs_no_tax_mapping(us: Org) -> None:
    assert "tax_rates_mapped" not in await _warnings(us)
