"""The QuickBooks customer of a platform client: its mapping, else a match as the sync mode says,
else a customer created under a name QuickBooks accepts.

A created customer's `Notes` carry a marker naming the client, so a create whose answer was lost
is recognised (by its name, which QuickBooks refuses twice) instead of made again (R3).
"""

from __future__ import annotations

import hashlib

from qbsync.mappings.matching import ClientFacts, CustomerIndex, MatchResult, action_for
from qbsync.mappings.names import DISPLAY_NAME_LENGTH, name_key, quickbooks_name
from qbsync.mappings.references import is_active
from qbsync.mappings.snapshots import ClientSnapshot
from qbsync.models import MappingKind, MappingSource
from qbsync.qbo import Customer, QboDuplicateNameError, QboError, Ref, quote
from qbsync.qbo.entities import EmailAddress, PhoneNumber, PhysicalAddress
from qbsync.qbo.query import EVERY_STATUS
from qbsync.sync.context import PushContext
from qbsync.sync.failures import PushFailedError, failure_for

MAX_CANDIDATES = 5


def customer_marker(org_id: str, client_id: str) -> str:
    return f"Created by qbsync for platform client {client_id} (organisation {org_id})."


def request_id(*parts: str) -> str:
    """A requestid QuickBooks takes (at most 50 characters), the same for the same parts."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


async def customer_for(
    ctx: PushContext, facts: ClientFacts, snapshot: ClientSnapshot | None
) -> str:
    """The QuickBooks customer id standing for this client, linking or creating one if need be."""
    mapped = ctx.mapped(MappingKind.CLIENT, facts.platform_id)
    if mapped is not None:
        return mapped
    customers = await ctx.refs.customers()
    taken = {row.qbo_id: pid for pid, row in ctx.mappings[MappingKind.CLIENT].items()}
    result = CustomerIndex(customers, taken=taken).match(facts)
    action = action_for(result, ctx.settings.customer_sync_mode)
    if action == "link" and result.customer is not None:
        await ctx.remember(
            MappingKind.CLIENT,
            facts.platform_id,
            result.customer.qbo_id,
            result.customer.display_name,
            MappingSource.MATCHED,
        )
        return result.customer.qbo_id
    if action == "ambiguous":
        # The matcher says why no one customer qualifies (several, only an inactive one, one
        # linked to another client); without its word, several matched.
        why = result.note or "it matches more than one QuickBooks customer"
        raise PushFailedError(
            "customer_ambiguous",
            f"Client {facts.name!r} can't be linked by itself: {why}{_listed(result)}. Link the "
            "right customer in the client mappings, then retry.",
        )
    if action == "skip":
        raise PushFailedError(
            "customer_not_matched",
            f"Client {facts.name!r} matches no QuickBooks customer and the sync mode is "
            f"match_only{_listed(result, 'closest')}: link a customer in the client mappings, "
            "or allow the sync to create customers, then retry.",
        )
    return await _create(ctx, facts, snapshot)


def _listed(result: MatchResult, lead: str = "") -> str:
    names = [f'"{c.display_name}" ({c.qbo_id})' for c in result.candidates[:MAX_CANDIDATES]]
    if not names:
        return ""
    return f" ({lead + ': ' if lead else ''}{', '.join(names)})"


async def _create(ctx: PushContext, facts: ClientFacts, snapshot: ClientSnapshot | None) -> str:
    marker = customer_marker(ctx.company.org_id, facts.platform_id)
    # Made for this client before (an answer lost, a mapping removed): found by its marker.
    created = next(
        (
            row
            for row in await ctx.refs.customers()
            if row.notes and marker in row.notes and is_active(row) and row.id
        ),
        None,
    )
    if created is None:
        created = await _create_named(ctx, facts, snapshot, marker)
    assert created.id is not None
    ctx.refs.created(created)
    await ctx.remember(
        MappingKind.CLIENT,
        facts.platform_id,
        created.id,
        created.display_name,
        MappingSource.CREATED,
    )
    return created.id


async def _create_named(
    ctx: PushContext, facts: ClientFacts, snapshot: ClientSnapshot | None, marker: str
) -> Customer:
    """Under the client's own name where it is free, else (or when QuickBooks says it is taken,
    the cached lists being older than its records) with the client's id as a suffix."""
    base = quickbooks_name(facts.name, DISPLAY_NAME_LENGTH)
    names = [base, suffixed(base, facts.platform_id)]
    if await display_name_held(ctx, base):
        names = names[1:]
    clash: QboDuplicateNameError | None = None
    for name in names:
        customer = _customer(ctx, name, facts, snapshot, marker)
        try:
            return await ctx.client.create(
                customer,
                requestid=request_id(ctx.company.realm_id, "customer", facts.platform_id, name),
            )
        except QboDuplicateNameError as taken:
            ours = await _ours_named(ctx, name, marker)
            if ours is not None:
                return ours
            clash = taken
        except QboError as error:
            if error.retryable:
                raise
            raise failure_for(error, f"Creating customer {name!r}") from error
    raise PushFailedError(
        "customer_name_taken",
        f"QuickBooks already has customers, vendors or employees named {names[0]!r} and "
        f"{names[-1]!r}: link the client to a customer in the client mappings, then retry.",
        fault=clash,
    )


def _customer(
    ctx: PushContext,
    name: str,
    facts: ClientFacts,
    snapshot: ClientSnapshot | None,
    marker: str,
) -> Customer:
    customer = Customer(display_name=name, notes=marker)
    if facts.company_name:
        customer.company_name = quickbooks_name(facts.company_name, DISPLAY_NAME_LENGTH)
    if facts.email:
        customer.primary_email_addr = EmailAddress(address=facts.email)
    if snapshot is not None:
        if snapshot.phone:
            customer.primary_phone = PhoneNumber(free_form_number=snapshot.phone)
        address = snapshot.billing_address
        if address is not None:
            customer.bill_addr = PhysicalAddress(
                line1=address.line1,
                line2=address.line2,
                city=address.city,
                country_sub_division_code=address.region,
                postal_code=address.postal_code,
                country=address.country,
            )
        if ctx.company.multi_currency and snapshot.currency:
            # Fixed once the customer exists: its invoices must be in this currency.
            customer.currency_ref = Ref(value=snapshot.currency)
    return customer


async def display_name_held(ctx: PushContext, name: str) -> bool:
    """Whether a customer, vendor or employee holds this display name (unique across all
    three, inactive customers included), as far as the cached lists know."""
    key = name_key(name)
    for rows in (await ctx.refs.customers(), await ctx.refs.vendors(), await ctx.refs.employees()):
        if any(row.display_name and name_key(row.display_name) == key for row in rows):
            return True
    return False


def suffixed(base: str, platform_id: str) -> str:
    """`base (platform id)`, within QuickBooks' 500 characters: clear, and the same each time."""
    suffix = f" ({quickbooks_name(platform_id, 100)})"
    return base[: DISPLAY_NAME_LENGTH - len(suffix)].rstrip() + suffix


async def _ours_named(ctx: PushContext, name: str, marker: str) -> Customer | None:
    """The customer holding `name`, when it is the one qbsync created for this client earlier
    (its answer lost); None when someone else's record holds the name."""
    rows = await ctx.client.query_all(Customer, f"DisplayName = {quote(name)} AND {EVERY_STATUS}")
    for row in rows:
        if row.notes and marker in row.notes and is_active(row):
            return row
    return None
