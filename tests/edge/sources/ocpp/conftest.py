"""Fixtures of the OCPP source tests (the asyncio test runner comes from tests/edge/sources/conftest.py).

* ``make_ocpp_config(**overrides)``: a validated source section on a free loopback port with
  chargers CP1/CP2 (passwords ``pw-CP1``/``pw-CP2``), security profile 1, the sessions DB in tmp_path.
* ``self_signed_tls``: (cert path, key path) of a self-signed server certificate for 127.0.0.1 / localhost
  (a client trusts it with ``ssl.create_default_context(cafile=cert)``).

The charge point, ``running_source`` and ``eventually`` are in ``cp16_peer.py``; certificates in ``tls_files.py``.
"""

from __future__ import annotations

import pytest

from tests.edge.sources.ocpp.cp16_peer import ocpp_config
from tests.edge.sources.ocpp.tls_files import make_self_signed


@pytest.fixture
def make_ocpp_config(tmp_path):
    def make(**overrides):
        return ocpp_config(tmp_path, **overrides)
    return make


@pytest.fixture
def self_signed_tls(tmp_path):
    return make_self_signed(tmp_path)
