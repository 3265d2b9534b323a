"""The HTTP client the API and the worker call Intuit and the platform with."""

from __future__ import annotations

import functools
import ssl

import httpx

from qbsync.settings import Settings


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds; one context serves every client the
    # process makes (each app or worker startup would otherwise load it again).
    return httpx.create_ssl_context()


def outbound_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.intuit.timeout_seconds, verify=_tls_context())
