"""The agent's MQTT link watches paho's sockets on the event loop; a socket already closed is skipped.

Seen in CI with the fleet simulator's links (same design): a broker that refuses the client
certificate reports it after the TLS 1.3 handshake, so paho closes the socket on the connect thread
before the loop runs the add_reader/add_writer it asked for, and the loop raised
"Invalid file descriptor: -1".
"""

import asyncio
import socket

from edge_agent.config import SiteConfig
from edge_agent.mqtt import MqttLink


def test_a_socket_closed_before_the_loop_watches_it_is_skipped_not_an_error():
    async def hooks_on_a_closed_socket() -> None:
        config = SiteConfig.model_validate({"site": "plant-1", "agent": "edge-01", "sources": [{"type": "synthetic", "name": "s", "devices": [{"id": "d1"}]}]})
        link = MqttLink(config, "will/topic", b"offline", on_puback=lambda mid, ok: None)
        link._loop = asyncio.get_running_loop()
        closed = socket.socket()
        closed.close()
        link._on_register_write(link.client, None, closed)        # on the loop's thread: runs at once
        link._watch(link._loop.add_reader, closed, link._read)    # what _on_socket_open schedules
        # an open socket that is no longer the client's (replaced by a reconnect) is not watched either
        stale = socket.socket()
        try:
            link._on_register_write(link.client, None, stale)
            link._watch(link._loop.add_reader, stale, link._read)
            assert link._loop.remove_writer(stale) is False and link._loop.remove_reader(stale) is False
        finally:
            stale.close()

    asyncio.run(hooks_on_a_closed_socket())
