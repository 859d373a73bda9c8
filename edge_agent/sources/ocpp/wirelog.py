"""The ``ocpp`` library logs every frame at INFO; for an agent with many chargers that is DEBUG
(``--log-level DEBUG`` shows them). Both version handlers hand this logger to the library."""

from __future__ import annotations

import logging


class _WireLog(logging.LoggerAdapter):
    def info(self, msg, *args, **kwargs):
        self.debug(msg, *args, **kwargs)


wire_log = _WireLog(logging.getLogger("edge_agent.sources.ocpp.wire"), {})
