"""OCPP source: a local central system for workplace chargers (OCPP 1.6J and 2.0.1) with
PV-surplus charging. See README.md in this folder for config, security profiles and metrics."""

from edge_agent.sources.ocpp.config import Config
from edge_agent.sources.ocpp.source import Source

__all__ = ["Config", "Source"]
