"""The whole edge agent, from a site.yaml with a gbfs source, through a real Mosquitto: a subscriber
decodes vehicle envelopes on the contract's telemetry topic; a broken feed shows in the status."""

from __future__ import annotations

import asyncio
import json

import pytest

from hinode import contract
from hinode.contract import DeviceKind
from tests.edge.sources.gbfs.feed_server import FeedServer
from tests.support.agent_proc import AgentProcess, write_site_config
from tests.support.collector import Collector
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(90)

SITE, AGENT = "hitachi-city", "gbfs-poller"


async def test_agent_publishes_gbfs_vehicles_as_vehicle_telemetry(tmp_path, broker):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", live=True)
        source = {"type": "gbfs", "name": "hitachi-ride", "url": feeds.url("/v3_0/gbfs.json"),
                  "min_interval_s": 0.2, "max_interval_s": 1.0, "backoff": {"initial_s": 0.2, "max_s": 0.5}}
        config = write_site_config(tmp_path / "site.yaml", broker.port, [source], site=SITE, agent=AGENT,
                                   mqtt={"wait_for_ingest": False})
        collector = Collector(broker.port)
        agent = await asyncio.to_thread(AgentProcess(config).start)
        try:
            def vehicles() -> dict[str, contract.TelemetryEnvelope]:
                with collector.lock:
                    raw = [e for e in collector.envelopes if e["kind"] == DeviceKind.VEHICLE]
                return {e.device: e for e in (contract.decode_telemetry(json.dumps(r).encode()) for r in raw)}

            got = await wait_until_async(lambda: len(vehicles()) == 6 and vehicles(), "six vehicle envelopes",
                                         timeout=30)
            for device, envelope in got.items():
                assert (envelope.site, envelope.agent) == (SITE, AGENT)
                assert envelope.meta["fleet"] == "hitachi-ride" and envelope.seq == 1
                assert {r.metric for r in envelope.readings} >= {"lat", "lon", "state"}
            assert collector.seqs and all(seqs == [1] for d, seqs in collector.seqs.items() if d in got)

            def status_devices() -> dict:
                with collector.lock:
                    status = collector.statuses.get(f"{SITE}/{AGENT}", {})
                return {d["device"]: d for d in status.get("devices", []) if d["device"] in got}

            await wait_until_async(lambda: len(status_devices()) == 6
                                   and all(d["online"] for d in status_devices().values()),
                                   "six vehicles online in the agent's status", timeout=20)

            feeds.fail("/v3_0/vehicle_status.json", 503)
            offline = await wait_until_async(
                lambda: (s := status_devices()) and not any(d["online"] for d in s.values()) and s,
                "the vehicles offline after the feed broke", timeout=20)
            assert all("HTTP 503" in d["error"] for d in offline.values())
            metrics = await asyncio.to_thread(agent.metrics)
            assert [value for name, value in metrics.items() if name.startswith("hinode_source_errors_total")
                    and 'source="hitachi-ride"' in name and 'code="http_status"' in name] >= [1.0]
        finally:
            await asyncio.to_thread(agent.stop)
            collector.close()
