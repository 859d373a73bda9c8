"""A large site's catalog goes out in parts the ingest accepts (200 chargers' catalog is ~400 KB,
above ``MAX_PAYLOAD_BYTES``): every device exactly once, every part decodable and small enough."""

import asyncio
import logging

from edge_agent.agent import CATALOG_PART_BYTES, Agent, SourceRunner
from edge_agent.config import load_site_config
from edge_agent.sources.base import SourceContext
from edge_agent.sources.ocpp import measurands
from hinode import contract
from hinode.contract import DeviceKind
from tests.support.agent_proc import write_site_config


def agent_with_chargers(tmp_path, chargers: int) -> Agent:
    sources = [{"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": 0, "security_profile": 0,
                "chargers": [{"id": f"CP{i:03d}"} for i in range(1, chargers + 1)]}]
    config = load_site_config(write_site_config(tmp_path / "site.yaml", 1883, sources))
    agent = Agent(config)
    asyncio.run(_register(agent, config))
    return agent


async def _register(agent: Agent, config) -> None:
    context = SourceContext(source_name="chargers", log=logging.getLogger("test"))
    for charger in config.source_configs[0].chargers:
        context.register(charger.id, DeviceKind.CHARGER)
        context.describe(charger.id, "ocpp-ocpp1.6", measurands.catalog(
            ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Current.Offered",
             "Voltage", "SoC", "Power.Offered", "Temperature"]))
    agent.runners.append(SourceRunner("chargers", "ocpp", context))


def test_two_hundred_chargers_catalog_is_sent_in_parts_the_ingest_accepts(tmp_path):
    agent = agent_with_chargers(tmp_path, 200)
    catalog = agent.catalog()
    assert len(contract.encode(catalog)) > contract.MAX_PAYLOAD_BYTES      # one message would be refused
    payloads = agent.catalog_payloads(catalog)
    assert len(payloads) >= 2
    topic = contract.catalog_topic(agent.config.site, agent.config.agent)
    seen = []
    for payload in payloads:
        assert len(payload) <= CATALOG_PART_BYTES
        part = contract.decode_catalog(payload, topic)
        seen += [d.device for d in part.devices]
        assert all(d.metrics for d in part.devices)
    assert sorted(seen) == [f"CP{i:03d}" for i in range(1, 201)]


def test_a_small_catalog_stays_one_message(tmp_path):
    agent = agent_with_chargers(tmp_path, 3)
    payloads = agent.catalog_payloads(agent.catalog())
    assert len(payloads) == 1
    assert len(contract.decode_catalog(payloads[0]).devices) == 3
