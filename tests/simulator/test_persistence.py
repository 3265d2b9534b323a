"""State under a data folder: a restarted simulator keeps companies, tokens and documents."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx

from qbsync.simulator import SimulatorConfig
from qbsync.simulator.persistence import STATE_FILE
from qbsync.simulator.testing import SimulatorHandle, running_simulator
from tests.simulator.conftest import CLIENT, US

REDIRECT = "https://app.example.test/callback"


async def connect(sim: SimulatorHandle, client: httpx.AsyncClient) -> dict[str, Any]:
    consent = await client.post(
        f"{sim.base_url}/_sim/authorize", json={"realm_id": US, "redirect_uri": REDIRECT}
    )
    code = httpx.URL(consent.json()["location"]).params["code"]
    tokens = await client.post(
        sim.token_url,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=CLIENT,
    )
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


async def api(
    client: httpx.AsyncClient,
    sim: SimulatorHandle,
    access_token: str,
    method: str,
    path: str,
    body: Any = None,
) -> httpx.Response:
    return await client.request(
        method,
        f"{sim.base_url}/v3/company/{US}/{path}",
        json=body,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


async def test_a_restart_keeps_companies_tokens_documents_and_the_clock(tmp_path: Path) -> None:
    config = SimulatorConfig(data_dir=tmp_path)
    invoice = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 10,
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }
    async with httpx.AsyncClient() as client:
        async with running_simulator(config) as sim:
            tokens = await connect(sim, client)
            created = await api(
                client, sim, tokens["access_token"], "POST", "customer", {"DisplayName": "Kept Ltd"}
            )
            assert created.status_code == 200
            first_invoice = (
                await api(client, sim, tokens["access_token"], "POST", "invoice", invoice)
            ).json()["Invoice"]
            await client.post(f"{sim.base_url}/_sim/clock/advance", json={"seconds": 600})
            stopped_at = sim.state.clock.timestamp()
        customer_id = created.json()["Customer"]["Id"]
        assert os.listdir(tmp_path) == [STATE_FILE]  # no temporary file left

        async with running_simulator(config) as sim:
            assert sim.state.clock.timestamp() >= stopped_at
            read = await api(client, sim, tokens["access_token"], "GET", f"customer/{customer_id}")
            assert read.status_code == 200, read.text
            assert read.json()["Customer"]["DisplayName"] == "Kept Ltd"
            refreshed = await client.post(
                sim.token_url,
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=CLIENT,
            )
            assert refreshed.status_code == 200
            another = await api(
                client, sim, tokens["access_token"], "POST", "customer", {"DisplayName": "New Ltd"}
            )
            assert int(another.json()["Customer"]["Id"]) == int(customer_id) + 1
            second_invoice = (
                await api(client, sim, tokens["access_token"], "POST", "invoice", invoice)
            ).json()["Invoice"]
            assert int(second_invoice["Id"]) > int(first_invoice["Id"])
            assert second_invoice["DocNumber"] == "1002"
            duplicate = await api(
                client, sim, tokens["access_token"], "POST", "customer", {"DisplayName": "Kept Ltd"}
            )
            assert duplicate.json()["Fault"]["Error"][0]["code"] == "6240"  # the index is rebuilt


async def test_changes_reach_the_file_shortly_without_a_stop(tmp_path: Path) -> None:
    config = SimulatorConfig(data_dir=tmp_path, save_delay_real_seconds=0.05)
    async with httpx.AsyncClient() as client, running_simulator(config) as sim:
        tokens = await connect(sim, client)
        await api(client, sim, tokens["access_token"], "POST", "vendor", {"DisplayName": "Soon"})
        for _ in range(100):
            await asyncio.sleep(0.02)
            saved = tmp_path / STATE_FILE
            if saved.exists() and "Soon" in saved.read_text():
                break
        else:
            raise AssertionError("the change was not saved")
        assert json.loads(saved.read_text())["format"] == 1


async def test_without_a_data_folder_nothing_is_written(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    async with httpx.AsyncClient() as client, running_simulator() as sim:
        assert sim.state.file is None
        await connect(sim, client)
    assert os.listdir(tmp_path) == []
