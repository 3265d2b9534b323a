"""The platform's side of the demo: one UK org's clients, services, VAT rates, two invoices and
an expense, built as the platform's events carry them (qbsync.devtools.platform_events)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from qbsync.devtools.platform_events import (
    InvoiceLine,
    client_snapshot,
    expense_snapshot,
    invoice_snapshot,
    service_snapshot,
    tax_rate_snapshot,
)

ORG_ID = "org_demo"
USER_ID = "user_demo"
# Trafalgar Consulting Ltd: the simulator's GB company, with VAT codes.
REALM_ID = "9341450000000002"
COMPANY_NAME = "Trafalgar Consulting Ltd"
CURRENCY = "GBP"
VAT_STANDARD = Decimal("20")
VAT_REDUCED = Decimal("5")

# Acme Ltd is already a customer in QuickBooks (same email): linked, not created again.
ACME = client_snapshot("cl_acme", "Acme Ltd", email="accounts@acme.test", currency=CURRENCY)
HAMPSTEAD = client_snapshot(
    "cl_hampstead", "Hampstead Studio Ltd", email="ap@hampstead-studio.test", currency=CURRENCY
)
CLIENTS = [ACME, HAMPSTEAD]
SERVICES = [
    service_snapshot("svc_consulting", "Consulting", unit_price=Decimal("150.00")),
    service_snapshot("svc_training", "Training", unit_price=Decimal("400.00")),
]
TAX_RATES = [
    tax_rate_snapshot("tr_vat20", "VAT 20%", VAT_STANDARD),
    tax_rate_snapshot("tr_vat5", "VAT 5%", VAT_REDUCED),
]
# The expense category the platform uses, mapped to this account of the chart.
EXPENSE_CATEGORY = "travel"
EXPENSE_ACCOUNT = "Travel"


def invoices(issued: date) -> list[dict[str, Any]]:
    due = issued + timedelta(days=30)
    return [
        invoice_snapshot(
            "inv_demo_1",
            number="DEMO-1001",
            client=ACME,
            lines=[
                InvoiceLine(
                    "svc_consulting",
                    "Strategy workshop",
                    Decimal("2"),
                    Decimal("150.00"),
                    "tr_vat20",
                    VAT_STANDARD,
                )
            ],
            currency=CURRENCY,
            issue_date=issued,
            due_date=due,
        ),
        invoice_snapshot(
            "inv_demo_2",
            number="DEMO-1002",
            client=HAMPSTEAD,
            lines=[
                InvoiceLine(
                    "svc_training",
                    "Team training day",
                    Decimal("1"),
                    Decimal("400.00"),
                    "tr_vat20",
                    VAT_STANDARD,
                ),
                InvoiceLine(
                    "svc_consulting",
                    "Energy review",
                    Decimal("1.5"),
                    Decimal("150.00"),
                    "tr_vat5",
                    VAT_REDUCED,
                ),
            ],
            currency=CURRENCY,
            issue_date=issued,
            due_date=due,
        ),
    ]


def expense(spent: date) -> dict[str, Any]:
    return expense_snapshot(
        "exp_demo_1",
        supplier_id="sup_rail",
        supplier_name="Northern Rail",
        amount=Decimal("86.40"),
        currency=CURRENCY,
        spent_on=spent,
        category_code=EXPENSE_CATEGORY,
        description="Train to the Acme workshop",
        tax_rate_id="tr_vat20",
    )


def today() -> date:
    return datetime.now(UTC).date()
