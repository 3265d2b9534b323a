"""One rule for a QuickBooks company id, checked wherever one comes in."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from qbsync.qbo import QboClient, QboConfig
from qbsync.qbo.config import IntuitEndpoints
from qbsync.qbo.realm import REALM_ID_MAX_LENGTH, is_realm_id


@pytest.mark.parametrize("value", ["9341450000000001", "1", "4" * REALM_ID_MAX_LENGTH])
def test_company_ids_are_digits(value: str) -> None:
    assert is_realm_id(value)


@pytest.mark.parametrize(
    "value", [None, "", "abc", "123 ", "12/34", "-1", "4" * (REALM_ID_MAX_LENGTH + 1), "١٢٣"]
)
def test_anything_else_is_not_a_company_id(value: str | None) -> None:
    assert not is_realm_id(value)


class _NoToken:
    async def access_token(self, *, force_refresh: bool = False) -> str:
        return "t"


class _NoLimit:
    def slot(self, realm_id: str, *, batch: bool = False, max_wait_seconds: float | None = None):  # type: ignore[no-untyped-def]
        raise AssertionError("never reached")


def test_the_client_refuses_a_path_in_place_of_a_company_id() -> None:
    endpoints = IntuitEndpoints(
        authorize_url="http://i/a",
        token_url="http://i/t",
        revoke_url="http://i/r",
        api_base_url="http://i",
    )
    config = QboConfig(
        client_id="c",
        client_secret=SecretStr("s"),
        redirect_uri="http://q/cb",
        endpoints=endpoints,
        webhook_verifier_token=SecretStr("v"),
    )
    with pytest.raises(ValueError, match="realm id"):
        QboClient(
            httpx.AsyncClient(), config, realm_id="1/../2", tokens=_NoToken(), limiter=_NoLimit()
        )
