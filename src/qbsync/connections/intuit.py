"""The QuickBooks side of a process: OAuth, limiter and config, built once and shared."""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
from redis.asyncio import Redis

from qbsync.crypto import Keyring
from qbsync.qbo import (
    AccessTokenProvider,
    IntuitOAuth,
    QboClient,
    QboConfig,
    RedisRateLimiter,
    RetryPolicy,
    SlotLimiter,
    rate_limit_config_from_settings,
)
from qbsync.settings import Settings

INTERACTIVE_RETRY = RetryPolicy(max_attempts=2, base_delay_seconds=0.5, max_total_seconds=5.0)


@dataclass(frozen=True)
class IntuitAccess:
    config: QboConfig
    oauth: IntuitOAuth
    limiter: SlotLimiter
    http: httpx.AsyncClient
    keyring: Keyring

    @classmethod
    def build(cls, settings: Settings, http: httpx.AsyncClient, redis: Redis) -> IntuitAccess:
        config = QboConfig.from_settings(settings)
        return cls(
            config=config,
            oauth=IntuitOAuth(http, config),
            limiter=RedisRateLimiter(redis, rate_limit_config_from_settings(settings)),
            http=http,
            keyring=Keyring.parse(settings.crypto.encryption_keys.get_secret_value()),
        )

    def client(
        self, realm_id: str, tokens: AccessTokenProvider, *, interactive: bool = False
    ) -> QboClient:
        """`interactive` calls answer a person waiting on a page: retry briefly, then report."""
        config = replace(self.config, retry=INTERACTIVE_RETRY) if interactive else self.config
        return QboClient(self.http, config, realm_id=realm_id, tokens=tokens, limiter=self.limiter)
