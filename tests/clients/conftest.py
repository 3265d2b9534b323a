"""Intuit's own Python clients pointed at the simulator, exactly as a user of those libraries would.

* intuit-oauth (`intuitlib.client.AuthClient`): its `environment` argument takes a discovery
  document URL in place of "sandbox" or "production"; every endpoint comes from that document.
* python-quickbooks (`quickbooks.QuickBooks`): the API host is the client's `api_url_v3`
  attribute, set on the instance.
* Both talk plain HTTP to the simulator, which oauthlib (under python-quickbooks) only allows
  with `OAUTHLIB_INSECURE_TRANSPORT=1`.

The libraries block, so the simulator runs in a thread of its own and tests are synchronous.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient  # type: ignore[import-untyped]

from qbsync.simulator.testing import SimulatorHandle, simulator_in_thread

CLIENT_ID = "simulator-client-id"
CLIENT_SECRET = "simulator-client-secret"
REDIRECT_URI = "https://app.example.test/quickbooks/callback"
US = "9341450000000001"


@pytest.fixture(autouse=True)
def plain_http_for_oauthlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def simulator() -> Iterator[SimulatorHandle]:
    with simulator_in_thread() as handle:
        yield handle


def discovery_url(simulator: SimulatorHandle) -> str:
    return f"{simulator.base_url}/.well-known/openid_sandbox_configuration/"


def auth_client(simulator: SimulatorHandle, **tokens: Any) -> AuthClient:
    return AuthClient(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, discovery_url(simulator), **tokens)


class _ConsentForm(HTMLParser):
    """The consent page's form as a browser sees it: action, hidden fields, company choices."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.companies: list[str] = []
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = attributes.get("action", "")
        elif tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "input" and attributes.get("type") == "radio":
            self.companies.append(attributes["value"])
        elif tag == "button":
            self.buttons[attributes.get("value", "")] = attributes.get("name", "")


@dataclass(frozen=True)
class Callback:
    """Where the consent sent the browser back to the app."""

    url: str

    @property
    def params(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlsplit(self.url).query).items()}


def consent(authorization_url: str, realm_id: str = US, *, approve: bool = True) -> Callback:
    """What a user does in the browser: open the URL, pick the company, press Connect."""
    page = requests.get(authorization_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    form = _ConsentForm()
    form.feed(page.text)
    assert realm_id in form.companies
    decision = "approve" if approve else "deny"
    answer = requests.post(
        urljoin(authorization_url, form.action),
        data={**form.fields, "realm_id": realm_id, form.buttons[decision]: decision},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return Callback(answer.headers["location"])


@pytest.fixture(autouse=True)
def quiet_library_warnings() -> Iterator[None]:
    # python-quickbooks warns about minor versions and intuitlib uses datetime.utcnow.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
