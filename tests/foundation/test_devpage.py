"""The newcomer's path: a dev token, and the stand-in settings page the callback lands on."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from qbsync.cli import main
from qbsync.connections.consent import CallbackReason
from qbsync.main import create_app
from qbsync.security import TokenVerifier
from qbsync.settings import Settings, get_settings
from tests.conftest import bearer


async def test_the_dev_page_is_html_and_explains_every_callback_reason(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dev/quickbooks?quickbooks=confirm&handle=abc")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/v1/quickbooks/connect/confirm" in page.text
    explained = set(re.findall(r"^  (\w+): \"", page.text, flags=re.MULTILINE))
    assert explained == {reason.value for reason in CallbackReason}


def test_the_readme_documents_every_callback_reason() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \| ", readme, flags=re.MULTILINE))
    assert {reason.value for reason in CallbackReason} <= documented


async def test_the_dev_page_mints_a_token_the_api_accepts(client: httpx.AsyncClient) -> None:
    minted = await client.post("/dev/token", json={"org_id": "org_dev", "user_id": "u"})
    assert minted.status_code == 200
    status = await client.get("/v1/quickbooks/connection", headers=bearer(minted.json()["token"]))
    assert status.status_code == 200
    assert status.json()["status"] == "not_connected"


async def test_production_serves_no_dev_page() -> None:
    app = create_app(Settings(env="dev").model_copy(update={"env": "production"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
        assert (await client.get("/dev/quickbooks")).status_code == 404
        assert (await client.post("/dev/token", json={})).status_code == 404


async def test_qbsync_token_prints_a_token_for_the_org(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBSYNC_ENV", "dev")
    get_settings.cache_clear()
    try:
        assert main(["token", "--org", "org_42", "--user", "ada"]) == 0
    finally:
        get_settings.cache_clear()
    token = capsys.readouterr().out.strip()
    context = await TokenVerifier(Settings(env="dev").auth).verify(token)
    assert (context.org_id, context.user_id) == ("org_42", "ada")


def test_qbsync_token_refuses_outside_dev(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBSYNC_ENV", "production")
    monkeypatch.setattr(
        "qbsync.cli.get_settings",
        lambda: Settings(env="dev").model_copy(update={"env": "production"}),
    )
    assert main(["token", "--org", "org_42"]) == 2
    assert "dev tokens only" in capsys.readouterr().err


def test_in_dev_consent_lands_on_the_dev_page_unless_told_otherwise() -> None:
    assert Settings(env="dev").platform.settings_url == "http://127.0.0.1:8000/dev/quickbooks"
    assert Settings(env="dev", port=8123).platform.settings_url.startswith("http://127.0.0.1:8123/")
    chosen = Settings(env="dev", platform={"settings_url": "https://app.test/s"})
    assert chosen.platform.settings_url == "https://app.test/s"
    assert Settings(env="test").platform.settings_url.startswith("http://localhost:3000/")


async def test_no_dev_token_when_tokens_come_from_a_jwks() -> None:
    settings = Settings(env="dev", auth={"jwks_url": "https://platform.test/jwks.json"})
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbsync.test") as client:
        answer = await client.post("/dev/token", json={})
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "dev_tokens_unavailable"
