"""QuickBooks misbehaving while a load is pushed: 429 and 5xx storms (R8), answers lost after
Intuit committed (R3), and a failing token endpoint (R7)."""

from __future__ import annotations

from tests.chaos.harness import Size, chaos_case
from tests.chaos.processes import Stack
from tests.chaos.results import Matrix


async def test_r8_a_429_storm_backs_off_and_every_document_lands_once(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R8: the company's next calls are all answered 429; jobs wait as asked and complete."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r8_429_storm",
        quality="R8",
        fault=f"429 to the next {size.storm} calls",
    ) as case:
        await case.inject(kind="throttle", times=size.storm, path=case.path())
        await case.send_load()


async def test_r8_a_5xx_storm_backs_off_and_every_document_lands_once(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R8: 503 then 500 to the company's next calls; nothing dropped, nothing expired."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r8_5xx_storm",
        quality="R8",
        fault=f"503 then 500 to the next {size.storm} calls",
    ) as case:
        half = max(1, size.storm // 2)
        await case.inject(kind="error", status_code=503, times=half, path=case.path())
        await case.inject(kind="error", status_code=500, times=half, path=case.path())
        await case.send_load()


async def test_r3_answers_lost_after_intuit_committed_create_nothing_twice(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R3: every write's connection is reset after QuickBooks committed it, `storm` times; the
    resend under the same requestid (or the marker lookup) finds the first."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r3_reset_after_commit",
        quality="R3",
        fault=f"connection reset after commit on the next {size.storm} writes",
    ) as case:
        await case.inject(
            kind="reset",
            method="POST",
            times=size.storm,
            path=case.path() + r"(customer|vendor|invoice|bill|batch)$",
        )
        await case.send_load()


async def test_r7_token_endpoint_5xx_defers_and_the_connection_stays_connected(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R7: the access token is rejected, and the token endpoint answers 503 `storm` times:
    jobs are deferred, the connection stays `connected`, every document lands once."""
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r7_token_5xx",
        quality="R7",
        fault=f"access token expired, token endpoint 503 x{size.storm}",
    ) as case:
        await case.platform.sim.expire_access_tokens(case.realm_id)
        await case.inject(kind="error", status_code=503, times=size.storm, path="tokens/bearer$")
        await case.send_load()


async def test_r7_token_endpoint_timeouts_defer_and_the_connection_stays_connected(
    stack: Stack, matrix: Matrix, size: Size
) -> None:
    """R7: the token endpoint stalls past qbsync's timeout, twice in a row."""
    stall = stack.timing.intuit_timeout_seconds + 0.5
    async with chaos_case(
        stack,
        matrix,
        size,
        case="r7_token_timeout",
        quality="R7",
        fault=f"access token expired, token endpoint stalls {stall:.1f} s x2",
    ) as case:
        await case.platform.sim.expire_access_tokens(case.realm_id)
        await case.inject(kind="delay", delay_seconds=stall, times=2, path="tokens/bearer$")
        await case.send_load()
