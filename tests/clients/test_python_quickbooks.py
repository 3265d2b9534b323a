"""python-quickbooks against the simulator: objects, queries, batch, CDC, delete, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from quickbooks import QuickBooks  # type: ignore[import-untyped]
from quickbooks.batch import batch_create  # type: ignore[import-untyped]
from quickbooks.cdc import change_data_capture  # type: ignore[import-untyped]
from quickbooks.exceptions import (  # type: ignore[import-untyped]
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.customer import Customer  # type: ignore[import-untyped]
from quickbooks.objects.detailline import (  # type: ignore[import-untyped]
    SalesItemLine,
    SalesItemLineDetail,
)
from quickbooks.objects.employee import Employee  # type: ignore[import-untyped]
from quickbooks.objects.invoice import Invoice  # type: ignore[import-untyped]
from quickbooks.objects.item import Item  # type: ignore[import-untyped]

from qbsync.simulator.testing import SimulatorHandle
from tests.clients.conftest import US, auth_client


@pytest.fixture
def qb(simulator: SimulatorHandle) -> Any:
    tokens = requests.post(f"{simulator.base_url}/_sim/companies/{US}/connect", timeout=10).json()
    client = auth_client(
        simulator, access_token=tokens["access_token"], refresh_token=tokens["refresh_token"]
    )
    qb = QuickBooks(
        auth_client=client,
        refresh_token=tokens["refresh_token"],
        company_id=US,
        minorversion=75,
        use_decimal=True,
    )
    # python-quickbooks picks its host from `api_url_v3` (or `sandbox_api_url_v3`).
    qb.api_url_v3 = f"{simulator.base_url}/v3"
    return qb


def new_customer(name: str) -> Any:
    customer = Customer()
    customer.DisplayName = name
    customer.CompanyName = name
    return customer


def invoice_line(item: Any, amount: str) -> Any:
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.Description = f"{item.Name} for {amount}"
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    line.SalesItemLineDetail.Qty = 1
    line.SalesItemLineDetail.UnitPrice = Decimal(amount)
    return line


def test_customers_are_created_queried_read_and_updated(qb: Any) -> None:
    created = new_customer("Gnome Garden Supplies").save(qb=qb)
    assert created.Id
    assert created.SyncToken == "0"

    found = Customer.filter(DisplayName="Gnome Garden Supplies", qb=qb)
    assert [customer.Id for customer in found] == [created.Id]
    read = Customer.get(created.Id, qb=qb)
    read.CompanyName = "Gnome Garden Supplies Ltd"
    # A full update sending back everything python-quickbooks read.
    updated = read.save(qb=qb)
    assert (updated.SyncToken, updated.CompanyName) == ("1", "Gnome Garden Supplies Ltd")
    assert Customer.count(qb=qb) == 5


def test_item_all_asks_for_sku_and_gets_every_active_item(qb: Any) -> None:
    items = Item.all(qb=qb)
    assert [item.Name for item in items] == ["Services", "Design", "Hours", "Gardening Supplies"]


def test_an_invoice_with_lines_is_taxed_updated_and_deleted(qb: Any) -> None:
    design, supplies = (
        Item.filter(Name="Design", qb=qb)[0],
        Item.filter(Name="Gardening Supplies", qb=qb)[0],
    )
    customer = new_customer("Pixie Landscaping").save(qb=qb)
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [invoice_line(design, "150.00"), invoice_line(supplies, "30.00")]

    saved = invoice.save(qb=qb)

    assert saved.DocNumber == "1001"
    assert saved.TotalAmt == Decimal("194.85")  # 180.00 taxable at 8.25 %
    first_ids = [line.Id for line in saved.Line if line.DetailType == "SalesItemLineDetail"]
    assert first_ids == ["1", "2"]

    read = Invoice.get(saved.Id, qb=qb)
    read.Line = [line for line in read.Line if line.DetailType == "SalesItemLineDetail"][1:]
    read.Line.append(invoice_line(design, "75.00"))
    updated = read.save(qb=qb)
    assert [line.Id for line in updated.Line if line.DetailType == "SalesItemLineDetail"] == [
        "2",
        "3",
    ]

    Invoice.get(saved.Id, qb=qb).delete(qb=qb)
    assert Invoice.filter(Id=saved.Id, qb=qb) == []


def test_a_batch_creates_each_item_and_reports_each_fault(qb: Any) -> None:
    result = batch_create(
        [new_customer("Batch One"), new_customer("Batch Two"), new_customer("Cool Cars")], qb=qb
    )

    assert sorted(customer.DisplayName for customer in result.successes) == [
        "Batch One",
        "Batch Two",
    ]
    [fault] = result.faults
    assert [error.code for error in fault.Error] == ["6240"]


def test_change_data_capture_reports_what_changed(qb: Any) -> None:
    since = datetime.now(UTC) - timedelta(minutes=5)
    created = new_customer("Changed Lately").save(qb=qb)

    changes = change_data_capture([Customer, Invoice], since.isoformat(), qb=qb)

    assert created.Id in [customer.Id for customer in changes.Customer]


def test_employees_share_the_name_space_of_customers_and_vendors(qb: Any) -> None:
    employee = Employee()
    employee.GivenName, employee.FamilyName = "Tom", "Thumb"
    saved = employee.save(qb=qb)
    assert saved.DisplayName == "Tom Thumb"
    assert "Tom Thumb" in [e.DisplayName for e in Employee.all(qb=qb)]

    with pytest.raises(QuickbooksException) as clash:
        new_customer("Tom Thumb").save(qb=qb)
    assert clash.value.error_code == 6240


def test_validation_failures_surface_as_library_exceptions_with_intuits_code(qb: Any) -> None:
    customer = new_customer("Typo Corp")
    customer.DisplayNmae = "Typo Corp"  # a property QuickBooks does not have

    with pytest.raises(ValidationException) as refused:
        customer.save(qb=qb)

    assert refused.value.error_code == 2010
    assert 'Unrecognized field "DisplayNmae"' in refused.value.detail

    with pytest.raises(ValidationException) as not_queryable:
        Invoice.where("PrivateNote = 'x'", qb=qb)
    assert not_queryable.value.error_code == 4001
