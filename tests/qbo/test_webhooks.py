"""`intuit-signature` on raw bytes (S4) and both webhook formats parsed into one list of changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from qbsync.qbo import EntityChange, WebhookPayloadError, parse_webhook, verify_signature

JAVA_SDK_BODY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":[{"name":'
    b'"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
CLOUDEVENTS_BODY = (
    b'[{"specversion":"1.0","id":"3f0c1a9e-0000-4000-8000-000000000001","source":"intuit.test",'
    b'"type":"qbo.invoice.updated.v1","datacontenttype":"application/json",'
    b'"time":"2026-01-15T18:04:05.000Z","intuitentityid":"130",'
    b'"intuitaccountid":"9341450000000000","data":{}}]'
)
LEGACY_BODY = (
    b'{"eventNotifications":[{"realmId":"9341450000000000","dataChangeEvent":{"entities":'
    b'[{"name":"Invoice","id":"130","operation":"Update","lastUpdated":"2026-01-15T18:04:05.000Z"}'
    b"]}}]}"
)
VECTORS = [
    ("verify_me", b'{"stuff":"5"}', "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="),
    (
        "b5771f19b12ddb4bcdb9f08bdc50bc63878a",
        JAVA_SDK_BODY,
        "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q=",
    ),
    ("test-verifier-token", CLOUDEVENTS_BODY, "TJPlspJg1Fay84BEh43c7xDhSTnOyhoAgyTsaTe9Ezw="),
    ("test-verifier-token", LEGACY_BODY, "urf8fzikceUULaGKElv9FvrGAicu3hpwxX+UDPFGdiQ="),
]
# sha256 of realm, entity, id, operation and UTC time, as ids were first issued.
LEGACY_UPDATE_DIGEST = "d1f747f9be716c83071f4bdab2c024dd6a5a2147"
VECTOR_IDS = ["python-quickbooks", "java-sdk", "cloudevents-doc", "legacy-doc"]


@pytest.mark.parametrize(("token", "body", "signature"), VECTORS, ids=VECTOR_IDS)
def test_signature_vectors(token: str, body: bytes, signature: str) -> None:
    """S4: the published vectors verify on the raw bytes."""
    assert verify_signature(body, signature, token)


@pytest.mark.parametrize(("token", "body", "signature"), VECTORS, ids=VECTOR_IDS)
def test_signature_refuses_any_change(token: str, body: bytes, signature: str) -> None:
    """S4: a changed body, a re-serialised body, a wrong token or a mangled header fail."""
    assert not verify_signature(body + b" ", signature, token)
    assert not verify_signature(json.dumps(json.loads(body), indent=1).encode(), signature, token)
    assert not verify_signature(body, signature, token + "x")
    assert not verify_signature(body, signature[:-4] + "AAA=", token)
    assert not verify_signature(body, None, token)
    assert not verify_signature(body, "", token)
    assert not verify_signature(body, "not base64!", token)
    assert not verify_signature(body, "ñ" + signature, token)
    assert not verify_signature(body, signature + signature, token)
    assert not verify_signature(body, signature, "")


def test_legacy_example_with_a_merge() -> None:
    body = {
        "eventNotifications": [
            {
                "realmId": "1185883450",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Customer",
                            "id": "1",
                            "operation": "Create",
                            "lastUpdated": "2015-10-05T14:42:19-0700",
                        },
                        {
                            "name": "Customer",
                            "id": "5",
                            "operation": "Merge",
                            "lastUpdated": "2015-10-05T14:42:19-0700",
                            "deletedId": "7",
                        },
                    ]
                },
            }
        ]
    }
    created, merged = parse_webhook(json.dumps(body).encode())
    assert created.realm_id == "1185883450"
    assert (created.entity, created.entity_id, created.operation) == ("Customer", "1", "Create")
    assert created.occurred_at == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    assert created.deleted_id is None
    assert created.source_format == "legacy"
    assert (merged.operation, merged.deleted_id) == ("Merge", "7")
    assert created.event_id != merged.event_id


def test_legacy_exact_body_and_the_upper_case_deleted_id_spelling() -> None:
    """The event id is pinned: ids already stored for dedupe must still match after upgrades."""
    (change,) = parse_webhook(LEGACY_BODY)
    assert change == EntityChange(
        realm_id="9341450000000000",
        entity="Invoice",
        entity_id="130",
        operation="Update",
        occurred_at=datetime(2026, 1, 15, 18, 4, 5, tzinfo=UTC),
        event_id="legacy-" + LEGACY_UPDATE_DIGEST,
        deleted_id=None,
        source_format="legacy",
    )
    merge = LEGACY_BODY.replace(b'"operation":"Update"', b'"operation":"merge","deletedID":"9"')
    (merged,) = parse_webhook(merge)
    assert (merged.operation, merged.deleted_id) == ("Merge", "9")


def test_legacy_event_ids_are_deterministic_across_time_spellings() -> None:
    """A retried legacy delivery dedupes to the same id; -0700 and Z for one instant agree."""
    (first,) = parse_webhook(JAVA_SDK_BODY)
    (again,) = parse_webhook(JAVA_SDK_BODY)
    (as_utc,) = parse_webhook(
        JAVA_SDK_BODY.replace(b"2015-10-05T14:42:19-0700", b"2015-10-05T21:42:19.000Z")
    )
    (other_op,) = parse_webhook(JAVA_SDK_BODY.replace(b"Create", b"Update"))
    assert first.event_id == again.event_id == as_utc.event_id
    assert first.event_id != other_op.event_id


def test_several_realms_in_one_legacy_delivery() -> None:
    body = {
        "eventNotifications": [
            {
                "realmId": realm,
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Payment",
                            "id": "9",
                            "operation": "Void",
                            "lastUpdated": "2026-01-15T18:04:05Z",
                        }
                    ]
                },
            }
            for realm in ("111", "222")
        ]
    }
    changes = parse_webhook(json.dumps(body).encode())
    assert [(c.realm_id, c.entity, c.operation) for c in changes] == [
        ("111", "Payment", "Void"),
        ("222", "Payment", "Void"),
    ]


def test_cloudevents_exact_body() -> None:
    (change,) = parse_webhook(CLOUDEVENTS_BODY)
    assert change == EntityChange(
        realm_id="9341450000000000",
        entity="Invoice",
        entity_id="130",
        operation="Update",
        occurred_at=datetime(2026, 1, 15, 18, 4, 5, tzinfo=UTC),
        event_id="3f0c1a9e-0000-4000-8000-000000000001",
        deleted_id=None,
        source_format="cloudevents",
    )


def test_cloudevents_intuit_sample_with_nanoseconds() -> None:
    body = [
        {
            "specversion": "1.0",
            "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.account.created.v1",
            "datacontenttype": "application/json",
            "time": "2025-09-10T21:31:25.179851517Z",
            "intuitentityid": "1234",
            "intuitaccountid": "310687",
            "data": {},
        }
    ]
    (change,) = parse_webhook(json.dumps(body).encode())
    assert (change.realm_id, change.entity, change.entity_id) == ("310687", "Account", "1234")
    assert change.operation == "Create"
    assert change.event_id == "88cd52aa-33b6-4351-9aa4-47572edbd068"
    assert change.occurred_at == datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC)
    assert change.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("event_type", "entity", "operation"),
    [
        ("qbo.billpayment.voided.v1", "BillPayment", "Void"),
        ("qbo.payment.emailed.v1", "Payment", "Emailed"),
        ("qbo.customer.merged.v1", "Customer", "Merge"),
        ("qbo.invoice.deleted.v2", "Invoice", "Delete"),
        ("qbo.salesreceipt.created.v1", "SalesReceipt", "Create"),
        ("qbo.newthing.restored.v1", "Newthing", "Restored"),
    ],
)
def test_cloudevents_types_are_normalised(event_type: str, entity: str, operation: str) -> None:
    event = json.loads(CLOUDEVENTS_BODY)[0]
    event["type"] = event_type
    event["time"] = "2026-01-15T10:04:05.123-08:00"
    (change,) = parse_webhook(json.dumps([event]).encode())
    assert (change.entity, change.operation) == (entity, operation)
    assert change.occurred_at == datetime(2026, 1, 15, 18, 4, 5, 123000, tzinfo=UTC)


def test_an_empty_cloudevents_array_has_no_changes() -> None:
    assert parse_webhook(b"[]") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"foo": 1}', "eventNotifications"),
        (b'"text"', "eventNotifications"),
        (b'{"eventNotifications": {}}', "eventNotifications: expected an array"),
        (b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}', "realmId"),
        (
            b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": '
            b'[{"name": "Invoice", "id": "1", "operation": "Update", '
            b'"lastUpdated": "yesterday"}]}}]}',
            "entities[0].lastUpdated",
        ),
        (
            b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": '
            b'[{"name": "Invoice", "id": "1", "operation": "Update", '
            b'"lastUpdated": "2026-01-15T18:04:05"}]}}]}',
            "no UTC offset",
        ),
        (b"[1]", "[0]: expected an object"),
        (b'[{"specversion": "1.0", "type": "qbo.invoice.updated.v1"}]', "intuitaccountid"),
        (b'[{"specversion": "1.0", "type": "invoice"}]', "[0].type"),
    ],
)
def test_malformed_payloads_raise_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(WebhookPayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_webhook(body)


def legacy_entity(**fields: object) -> bytes:
    entity = {
        "name": "Customer",
        "id": "5",
        "operation": "Update",
        "lastUpdated": "2015-10-05T14:42:19-0700",
        **fields,
    }
    notification = {"realmId": "1", "dataChangeEvent": {"entities": [entity]}}
    return json.dumps({"eventNotifications": [notification]}).encode()


def cloud_event(**fields: object) -> bytes:
    event = {**json.loads(CLOUDEVENTS_BODY)[0], **fields}
    return json.dumps([event]).encode()


MALFORMED = {
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "an integer too long to read": b'{"eventNotifications": [{"realmId": ' + b"1" * 5000 + b"}]}",
    "not UTF-8": b'{"eventNotifications": "\xff\xfe"}',
    "a time past year 9999 in UTC": legacy_entity(lastUpdated="9999-12-31T23:59:59-01:00"),
    "a time before year 1 in UTC": legacy_entity(lastUpdated="0001-01-01T00:00:00+01:00"),
    "a cloud event time past year 9999": cloud_event(time="9999-12-31T23:59:59-01:00"),
    "an empty entity in the type": cloud_event(type="qbo..updated.v1"),
    "an empty operation in the type": cloud_event(type="qbo.invoice..v1"),
    "a deletedId that is an object": legacy_entity(operation="Merge", deletedId={"id": "7"}),
    "a deletedId that is a list": legacy_entity(operation="Merge", deletedId=["7"]),
    "a cloud event deletedId that is a list": cloud_event(data={"deletedId": ["7"]}),
    "a boolean id": legacy_entity(id=True),
    "a fractional id": legacy_entity(id=1.5),
    "an entity name of spaces": legacy_entity(name="   "),
    "entities null": json.dumps(
        {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": None}}]}
    ).encode(),
    "dataChangeEvent a list": json.dumps(
        {"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]}
    ).encode(),
    "a cloud event that is a list": b"[[]]",
    "a cloud event type that is a number": cloud_event(type=5),
    "a time that is a number": legacy_entity(lastUpdated=1444081339),
    "null": b"null",
    "empty body": b"",
    "a realm id that is not a company id": json.dumps(
        {"eventNotifications": [{"realmId": "../1", "dataChangeEvent": {"entities": []}}]}
    ).encode(),
    "a cloud event realm id that is not a company id": cloud_event(intuitaccountid="x" * 40),
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_every_malformed_shape_is_a_webhook_payload_error(body: bytes) -> None:
    """A body no handler can use is refused with one error type, never a crash."""
    with pytest.raises(WebhookPayloadError):
        parse_webhook(body)


def test_merges_into_one_record_in_the_same_second_keep_distinct_event_ids() -> None:
    """The legacy id dedupes retries, but two merges into customer 5 are two events."""
    body = {
        "eventNotifications": [
            {
                "realmId": "1",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Customer",
                            "id": "5",
                            "operation": "Merge",
                            "lastUpdated": "2015-10-05T14:42:19-0700",
                            "deletedId": deleted,
                        }
                        for deleted in ("7", "8")
                    ]
                },
            }
        ]
    }
    first, second = parse_webhook(json.dumps(body).encode())
    assert first.event_id != second.event_id
    (again, _) = parse_webhook(json.dumps(body).encode())
    assert again.event_id == first.event_id
