"""The QuickBooks side of a process: OAuth, limiter and config, built from `Settings` once and
shared. The only place that turns settings into the `qbsync.qbo` package's own config objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial

import httpx
from arq.connections import ArqRedis

from qbsync.connections.read_budget import enqueue_read_budget_warning
from qbsync.crypto import Keyring
from qbsync.observability import CompanyCallCounter, count_intuit_call
from qbsync.qbo import (
    AccessTokenProvider,
    ApiCall,
    IntuitEndpoints,
    IntuitOAuth,
    QboClient,
    QboConfig,
    RateLimitConfig,
    RedisRateLimiter,
    RetryPolicy,
    SlotLimiter,
)
from qbsync.qbo.config import (
    INTUIT_API_BASE_URLS,
    INTUIT_AUTHORIZE_URL,
    INTUIT_REQUEST_TIMEOUT_SECONDS,
    INTUIT_REVOKE_URL,
    INTUIT_TOKEN_URL,
)
from qbsync.queue import JobQueue
from qbsync.settings import Settings

INTERACTIVE_RETRY = RetryPolicy(max_attempts=2, base_delay_seconds=0.5, max_total_seconds=5.0)
# A person waiting on a page is better told "busy, try again" than kept waiting behind a backlog.
INTERACTIVE_LIMITER_WAIT_SECONDS = 3.0


def intuit_endpoints(settings: Settings) -> IntuitEndpoints:
    """Intuit's hosts for the environment, the simulator's, or the configured overrides."""
    intuit = settings.intuit
    if intuit.environment == "simulator":
        base = f"http://127.0.0.1:{settings.simulator.port}"
        defaults = IntuitEndpoints(
            authorize_url=f"{base}/connect/oauth2",
            token_url=f"{base}/oauth2/v1/tokens/bearer",
            revoke_url=f"{base}/v2/oauth2/tokens/revoke",
            api_base_url=base,
        )
    else:
        defaults = IntuitEndpoints(
            authorize_url=INTUIT_AUTHORIZE_URL,
            token_url=INTUIT_TOKEN_URL,
            revoke_url=INTUIT_REVOKE_URL,
            api_base_url=INTUIT_API_BASE_URLS[intuit.environment],
        )
    return IntuitEndpoints(
        authorize_url=intuit.authorize_url or defaults.authorize_url,
        token_url=intuit.token_url or defaults.token_url,
        revoke_url=intuit.revoke_url or defaults.revoke_url,
        api_base_url=(intuit.api_base_url or defaults.api_base_url).rstrip("/"),
    )


def qbo_config(
    settings: Settings, *, call_recorder: Callable[[ApiCall], Awaitable[None]] | None = None
) -> QboConfig:
    intuit = settings.intuit
    return QboConfig(
        client_id=intuit.client_id,
        client_secret=intuit.client_secret,
        redirect_uri=intuit.redirect_uri,
        endpoints=intuit_endpoints(settings),
        webhook_verifier_token=intuit.webhook_verifier_token,
        minor_version=intuit.minor_version,
        timeout_seconds=intuit.timeout_seconds,
        cdc_max_objects=intuit.cdc_max_objects,
        retry=RetryPolicy(),
        call_observer=count_intuit_call,
        call_recorder=call_recorder,
    )


def rate_limit_config(settings: Settings) -> RateLimitConfig:
    intuit = settings.intuit
    return RateLimitConfig(
        requests_per_window=intuit.requests_per_minute,
        max_in_flight=intuit.max_in_flight,
        batch_requests_per_window=intuit.batch_requests_per_minute,
        lease_seconds=max(intuit.timeout_seconds, INTUIT_REQUEST_TIMEOUT_SECONDS) + 30.0,
        key_prefix=settings.redis.key_prefix,
    )


@dataclass(frozen=True)
class IntuitAccess:
    config: QboConfig
    oauth: IntuitOAuth
    limiter: SlotLimiter
    http: httpx.AsyncClient
    keyring: Keyring
    # Every process's calls, per company per UTC day and month (the sync summary shows them),
    # against the company's monthly CorePlus budget (P7).
    calls: CompanyCallCounter

    @classmethod
    def build(cls, settings: Settings, http: httpx.AsyncClient, redis: ArqRedis) -> IntuitAccess:
        calls = CompanyCallCounter(
            redis,
            settings.redis.key_prefix,
            monthly_coreplus_budget=settings.intuit.monthly_coreplus_budget,
            # Only a job is enqueued right after the call: the warning's transaction runs in it.
            on_budget_crossed=partial(
                enqueue_read_budget_warning, JobQueue(redis, settings.redis.queue_name)
            ),
        )
        config = qbo_config(settings, call_recorder=calls.record)
        return cls(
            config=config,
            oauth=IntuitOAuth(http, config),
            limiter=RedisRateLimiter(redis, rate_limit_config(settings)),
            http=http,
            keyring=Keyring.parse(settings.crypto.encryption_keys.get_secret_value()),
            calls=calls,
        )

    def client(
        self, realm_id: str, tokens: AccessTokenProvider, *, interactive: bool = False
    ) -> QboClient:
        """`interactive` calls answer a person waiting on a page: retry briefly, wait on the
        company's shared limits only briefly, then report."""
        config = (
            replace(
                self.config,
                retry=INTERACTIVE_RETRY,
                limiter_wait_seconds=INTERACTIVE_LIMITER_WAIT_SECONDS,
            )
            if interactive
            else self.config
        )
        return QboClient(self.http, config, realm_id=realm_id, tokens=tokens, limiter=self.limiter)

    def background_client(
        self,
        realm_id: str,
        tokens: AccessTokenProvider,
        *,
        retry: RetryPolicy,
        limiter_wait_seconds: float,
    ) -> QboClient:
        """A job's client: its own retry bound and wait on the shared limits, past which the
        typed, retryable error reaches the job, which defers itself."""
        config = replace(self.config, retry=retry, limiter_wait_seconds=limiter_wait_seconds)
        return QboClient(self.http, config, realm_id=realm_id, tokens=tokens, limiter=self.limiter)
