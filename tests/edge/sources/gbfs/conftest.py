"""Fixtures of the GBFS source tests (the asyncio runner and ``source_tools`` come from tests/edge/sources).

The feed server (real aiohttp on a free loopback port) is started inside each test:
``async with FeedServer() as feeds:`` (async fixtures need a plugin this suite does not use).
* ``gbfs_config(url, **keys)``: a validated source section with fast intervals.
"""

from __future__ import annotations

import pytest

from edge_agent.sources.gbfs import Config

@pytest.fixture
def gbfs_config():
    def make(url: str, **keys) -> Config:
        section = {"type": "gbfs", "name": "feed", "url": url, "min_interval_s": 0.1, "max_interval_s": 0.5,
                   "timeout_s": 2.0, "backoff": {"initial_s": 0.1, "max_s": 0.4}, **keys}
        return Config.model_validate(section)
    return make
