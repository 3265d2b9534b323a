"""Test controls under /_sim and as Python helpers: consent, users' edits, faults, inspection."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator, model_validator
from starlette.responses import Response

from qbsync.simulator.errors import unsupported
from qbsync.simulator.faults import FaultRule, FaultSpec
from qbsync.simulator.fields import mapping
from qbsync.simulator.jsonio import JsonObject, json_response, loads
from qbsync.simulator.ledger import ChangeEvent, WriteRequest
from qbsync.simulator.oauth import ConsentRequest
from qbsync.simulator.state import SimulatorState
from qbsync.simulator.store import ALL_ENTITIES, NAME_LISTS, writable_copy
from qbsync.simulator.tokens import ACCOUNTING_SCOPE, TokenSet
from qbsync.simulator.webhooks import DeliveryAttempt, DropPolicy


class AuthorizeRequest(BaseModel):
    realm_id: str
    redirect_uri: str
    state: str = ""
    scope: str = ACCOUNTING_SCOPE
    client_id: str | None = None
    approve: bool = True


class PaymentRequest(BaseModel):
    invoice_id: str
    amount: Decimal = Field(gt=0)
    txn_date: str | None = None


class ExpireRequest(BaseModel):
    kind: Literal["access", "refresh"] = "access"
    realm_id: str | None = None


class AdvanceRequest(BaseModel):
    seconds: float = Field(gt=0)


class CloseBooksRequest(BaseModel):
    # Required, with null to reopen the books, so that an empty body is an error, not a reopening.
    date: str | None

    @field_validator("date")
    @classmethod
    def _is_a_date(cls, value: str | None) -> str | None:
        # Only QBO's own form: pydantic's date parsing would also take numbers and timestamps.
        if value is not None:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is None:
                raise ValueError("date must be YYYY-MM-DD")
            dt.date.fromisoformat(value)
        return value


class MergeRequest(BaseModel):
    entity: str
    from_id: str
    into_id: str


class WebhookDropRequest(BaseModel):
    """Exactly one of: `drop` (true: drop every notification until false; false: send them
    all again), `count` (drop the next N changes' notifications) or `fraction` (drop each with
    that probability, repeatably from `seed`). Each request replaces the previous policy."""

    drop: bool | None = None
    count: int | None = Field(default=None, ge=1)
    fraction: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _one_choice(self) -> WebhookDropRequest:
        chosen = [value for value in (self.drop, self.count, self.fraction) if value is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of drop, count or fraction")
        return self

    def policy(self) -> DropPolicy:
        return DropPolicy(
            everything=self.drop is True,
            count=self.count or 0,
            fraction=self.fraction or 0.0,
            seed=self.seed,
        )


def change_json(event: ChangeEvent) -> JsonObject:
    """A change as the admin API shows it (the dropped ones, for instance)."""
    body: JsonObject = {
        "realm_id": event.realm_id,
        "entity": event.entity,
        "id": event.entity_id,
        "operation": event.operation,
        "at": event.timestamp,
    }
    if event.deleted_id is not None:
        body["deleted_id"] = event.deleted_id
    return body


class Admin:
    """What a QuickBooks user, Intuit's operators or a test can do to a running simulator."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    # OAuth ------------------------------------------------------------------------------------

    def authorize(self, request: AuthorizeRequest) -> str:
        """Consent without the HTML page: the callback URL the browser would be sent to."""
        state = self.state
        params = {
            "client_id": request.client_id or state.config.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": request.scope,
            "state": request.state,
            "response_type": "code",
        }
        consent = ConsentRequest.from_params(state, params)
        return consent.decide(state, request.realm_id, approve=request.approve)

    def connect(self, realm_id: str) -> TokenSet:
        """Tokens for a company as if consent and code exchange had happened (not counted)."""
        self.state.company(realm_id)  # Intuit only knows companies that exist
        return self.state.tokens.connect(realm_id)

    def expire_tokens(self, request: ExpireRequest) -> int:
        tokens = self.state.tokens
        if request.kind == "access":
            return tokens.expire_access_tokens(request.realm_id)
        return tokens.expire_refresh_tokens(request.realm_id)

    def disconnect(self, realm_id: str) -> int:
        """The user disconnects the app inside QuickBooks: every token of the company dies."""
        return self.state.tokens.revoke_company(realm_id)

    # Changes made in QuickBooks by a person ----------------------------------------------------

    def record_payment(self, realm_id: str, request: PaymentRequest) -> JsonObject:
        ledger = self.state.ledger(realm_id)
        invoice = ledger.read("Invoice", request.invoice_id)
        body: JsonObject = {
            "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
            "TotalAmt": request.amount,
            "Line": [
                {
                    "Amount": request.amount,
                    "LinkedTxn": [{"TxnId": request.invoice_id, "TxnType": "Invoice"}],
                }
            ],
        }
        if request.txn_date:
            body["TxnDate"] = request.txn_date
        return ledger.create("Payment", WriteRequest(body))

    def edit_invoice(self, realm_id: str, invoice_id: str, changes: JsonObject) -> JsonObject:
        return self._edit(realm_id, "Invoice", invoice_id, changes)

    def edit_payment(self, realm_id: str, payment_id: str, changes: JsonObject) -> JsonObject:
        """A sparse change to a payment (its amount, or the `Line` that applies it)."""
        return self._edit(realm_id, "Payment", payment_id, changes)

    def delete_payment(self, realm_id: str, payment_id: str) -> JsonObject:
        return self._ids_operation(realm_id, "Payment", payment_id, "delete")

    def void_payment(self, realm_id: str, payment_id: str) -> JsonObject:
        """Zeroes the payment and unapplies it: its invoices are open again."""
        return self._ids_operation(realm_id, "Payment", payment_id, "void")

    def void_invoice(self, realm_id: str, invoice_id: str) -> JsonObject:
        return self._ids_operation(realm_id, "Invoice", invoice_id, "void")

    def delete_invoice(self, realm_id: str, invoice_id: str) -> JsonObject:
        """Refused, as by the API, while payments are applied to it."""
        return self._ids_operation(realm_id, "Invoice", invoice_id, "delete")

    def deactivate(self, realm_id: str, entity: str, object_id: str) -> JsonObject:
        """A person makes a list record inactive: an Update webhook, as for the API's sparse
        `Active: false` [U: QuickBooks' own screen may notify Delete]. A customer with an open
        balance stays active, as through the API."""
        if entity not in NAME_LISTS:
            raise unsupported(f"Only list records can be made inactive, not {entity}")
        return self._edit(realm_id, entity, object_id, {"Active": False})

    def merge(self, realm_id: str, entity: str, from_id: str, into_id: str) -> JsonObject:
        """A person merges `from_id` into `into_id` (Customer, Vendor, Item or Account): the
        survivor comes back. See Ledger.merge for what changes and what is notified."""
        return self.state.ledger(realm_id).merge(entity, from_id, into_id)

    def _edit(self, realm_id: str, entity: str, object_id: str, changes: JsonObject) -> JsonObject:
        ledger = self.state.ledger(realm_id)
        current = ledger.read(entity, object_id)
        body = {**changes, "Id": object_id, "SyncToken": current["SyncToken"], "sparse": True}
        return ledger.update(entity, WriteRequest(body))

    def _ids_operation(
        self, realm_id: str, entity: str, object_id: str, operation: Literal["delete", "void"]
    ) -> JsonObject:
        """Delete or void with the current SyncToken, as the person's screen has it."""
        ledger = self.state.ledger(realm_id)
        ids = {"Id": object_id, "SyncToken": ledger.read(entity, object_id)["SyncToken"]}
        return ledger.delete(entity, ids) if operation == "delete" else ledger.void(entity, ids)

    def close_books(self, realm_id: str, close_date: str | None) -> JsonObject:
        """The books are closed through `close_date` (None reopens them): transactions dated
        on or before it can't be created, changed, voided or deleted through the API."""

        def change(prefs: JsonObject) -> None:
            accounting = prefs["AccountingInfoPrefs"]
            if close_date is None:
                accounting.pop("BookCloseDate", None)
            else:
                accounting["BookCloseDate"] = close_date

        return self._edit_preferences(realm_id, change)

    def enable_multicurrency(self, realm_id: str) -> JsonObject:
        """Multicurrency is turned on; as in QBO there is no way back."""

        def change(prefs: JsonObject) -> None:
            prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] = True

        return self._edit_preferences(realm_id, change)

    def _edit_preferences(self, realm_id: str, change: Callable[[JsonObject], None]) -> JsonObject:
        """A settings change in QuickBooks: Preferences' SyncToken moves and a webhook says so,
        unless nothing changed."""
        ledger = self.state.ledger(realm_id)
        prefs = ledger.read("Preferences", "1")
        body = writable_copy(prefs)
        change(body)
        if body == writable_copy(prefs):
            return prefs
        return ledger.touch("Preferences", prefs, body)

    # Faults and time -----------------------------------------------------------------------------

    def inject(self, spec: FaultSpec) -> FaultRule:
        return self.state.faults.add(spec)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def drop_webhooks(self, request: WebhookDropRequest) -> JsonObject:
        """From now on, notifications of the changes the policy picks are never sent (nor
        retried); each is kept in `webhooks_dropped`. Changes already queued still go."""
        self.state.webhooks.drop_policy = request.policy()
        return self.webhook_drop_status()

    def webhook_drop_status(self) -> JsonObject:
        hub = self.state.webhooks
        policy = hub.drop_policy
        return {
            "drop": policy.everything,
            "count": policy.count,
            "fraction": policy.fraction,
            "queued": hub.queued,
            "dropped": len(hub.dropped),
        }

    def advance_clock(self, seconds: float) -> None:
        """Move Intuit time forward: tokens expire, limit windows pass, retries come due."""
        self.state.clock.advance(seconds)

    # Inspection --------------------------------------------------------------------------------

    def documents(self, realm_id: str, entity: str) -> list[JsonObject]:
        """Every stored object of an entity, inactive and voided ones included."""
        return list(self.state.company(realm_id).table(entity).values())

    def requestid_counts(self, realm_id: str) -> dict[str, int]:
        return dict(self.state.stats.requestids.get(realm_id, {}))

    def forget_requestids(self, realm_id: str) -> int:
        """Intuit forgets the answers it keeps for requestids (when is not documented): a repeat
        after this runs again. The counts in the stats stay."""
        responses = self.state.company(realm_id).responses
        forgotten = len(responses)
        responses.clear()
        return forgotten

    @property
    def refresh_calls(self) -> int:
        return self.state.stats.token_calls["refresh_token"]

    @property
    def revoke_calls(self) -> int:
        return self.state.stats.revoke_calls

    @property
    def webhook_attempts(self) -> list[DeliveryAttempt]:
        return self.state.webhooks.attempts

    @property
    def webhooks_dropped(self) -> list[ChangeEvent]:
        """The changes whose notification was dropped on purpose, oldest first."""
        return self.state.webhooks.dropped

    def stats(self) -> JsonObject:
        stats = self.state.stats
        return {
            "requests_by_realm": dict(stats.requests_by_realm),
            "requests_by_endpoint": dict(stats.requests_by_endpoint),
            "throttled_by_realm": dict(stats.throttled_by_realm),
            "token_calls": dict(stats.token_calls),
            "revoke_calls": stats.revoke_calls,
            "requestids": {realm: dict(counts) for realm, counts in stats.requestids.items()},
            # Changes due a notification: queued for delivery, or dropped on purpose.
            "webhook_events": {
                "queued": self.state.webhooks.queued,
                "dropped": len(self.state.webhooks.dropped),
            },
        }


def build_router(admin: Admin) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulator admin"])
    state = admin.state

    @router.post("/authorize")
    async def authorize(request: AuthorizeRequest) -> JsonObject:
        return {"location": admin.authorize(request)}

    @router.get("/companies")
    async def companies() -> list[JsonObject]:
        return [
            {
                "realm_id": realm_id,
                "name": company.spec.name,
                "country": company.spec.country,
                "connected": state.tokens.is_connected(realm_id),
            }
            for realm_id, company in state.companies.items()
        ]

    @router.post("/companies/{realm_id}/connect")
    async def connect(realm_id: str) -> JsonObject:
        return admin.connect(realm_id).body(include_hard_expiry=True)

    @router.post("/companies/{realm_id}/disconnect")
    async def disconnect(realm_id: str) -> JsonObject:
        return {"revoked_grants": admin.disconnect(realm_id)}

    # Entities go out through the simulator's encoder so that money stays exact.
    @router.get("/companies/{realm_id}/documents/{entity}")
    async def documents(realm_id: str, entity: str) -> Response:
        rows = admin.documents(realm_id, entity) if entity in ALL_ENTITIES else []
        return json_response({entity: rows})

    @router.post("/companies/{realm_id}/payments")
    async def record_payment(realm_id: str, request: PaymentRequest) -> Response:
        return json_response({"Payment": admin.record_payment(realm_id, request)})

    @router.patch("/companies/{realm_id}/payments/{payment_id}")
    async def edit_payment(realm_id: str, payment_id: str, request: Request) -> Response:
        changes = mapping(loads(await request.body()), "Payment")
        return json_response({"Payment": admin.edit_payment(realm_id, payment_id, changes)})

    @router.delete("/companies/{realm_id}/payments/{payment_id}")
    async def delete_payment(realm_id: str, payment_id: str) -> Response:
        return json_response({"Payment": admin.delete_payment(realm_id, payment_id)})

    @router.post("/companies/{realm_id}/payments/{payment_id}/void")
    async def void_payment(realm_id: str, payment_id: str) -> Response:
        return json_response({"Payment": admin.void_payment(realm_id, payment_id)})

    @router.patch("/companies/{realm_id}/invoices/{invoice_id}")
    async def edit_invoice(realm_id: str, invoice_id: str, request: Request) -> Response:
        changes = mapping(loads(await request.body()), "Invoice")
        return json_response({"Invoice": admin.edit_invoice(realm_id, invoice_id, changes)})

    @router.delete("/companies/{realm_id}/invoices/{invoice_id}")
    async def delete_invoice(realm_id: str, invoice_id: str) -> Response:
        return json_response({"Invoice": admin.delete_invoice(realm_id, invoice_id)})

    @router.post("/companies/{realm_id}/invoices/{invoice_id}/void")
    async def void_invoice(realm_id: str, invoice_id: str) -> Response:
        return json_response({"Invoice": admin.void_invoice(realm_id, invoice_id)})

    @router.post("/companies/{realm_id}/documents/{entity}/{object_id}/deactivate")
    async def deactivate(realm_id: str, entity: str, object_id: str) -> Response:
        return json_response({entity: admin.deactivate(realm_id, entity, object_id)})

    @router.post("/companies/{realm_id}/merge")
    async def merge(realm_id: str, request: MergeRequest) -> Response:
        survivor = admin.merge(realm_id, request.entity, request.from_id, request.into_id)
        return json_response({request.entity: survivor})

    @router.post("/companies/{realm_id}/close-books")
    async def close_books(realm_id: str, request: CloseBooksRequest) -> Response:
        return json_response({"Preferences": admin.close_books(realm_id, request.date)})

    @router.post("/companies/{realm_id}/multicurrency")
    async def enable_multicurrency(realm_id: str) -> Response:
        return json_response({"Preferences": admin.enable_multicurrency(realm_id)})

    @router.post("/companies/{realm_id}/forget-requestids")
    async def forget_requestids(realm_id: str) -> JsonObject:
        return {"forgotten": admin.forget_requestids(realm_id)}

    @router.post("/tokens/expire")
    async def expire_tokens(request: ExpireRequest) -> JsonObject:
        return {"expired": admin.expire_tokens(request)}

    @router.get("/faults")
    async def faults() -> list[JsonObject]:
        return [
            {"id": rule.rule_id, "remaining": rule.remaining, **rule.spec.model_dump()}
            for rule in state.faults.rules
        ]

    @router.post("/faults")
    async def inject(spec: FaultSpec) -> JsonObject:
        return {"id": admin.inject(spec).rule_id}

    @router.delete("/faults")
    async def clear_faults() -> JsonObject:
        admin.clear_faults()
        return {}

    @router.post("/clock/advance")
    async def advance(request: AdvanceRequest) -> JsonObject:
        admin.advance_clock(request.seconds)
        return {"now": state.clock.now().isoformat()}

    @router.get("/stats")
    async def stats() -> JsonObject:
        return admin.stats()

    @router.post("/webhooks/drop")
    async def drop_webhooks(request: WebhookDropRequest) -> JsonObject:
        return admin.drop_webhooks(request)

    @router.get("/webhooks/dropped")
    async def webhooks_dropped() -> JsonObject:
        return {
            **admin.webhook_drop_status(),
            "changes": [change_json(event) for event in admin.webhooks_dropped],
        }

    @router.get("/webhooks/attempts")
    async def webhook_attempts() -> list[JsonObject]:
        return [
            {
                "number": attempt.number,
                "at": attempt.at,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "body": attempt.body.decode(),
            }
            for attempt in admin.webhook_attempts
        ]

    return router
