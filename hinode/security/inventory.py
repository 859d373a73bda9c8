"""The inventory the MQTT credentials are generated from: which agents exist at which site.

    broker:
      hostnames: [localhost, 127.0.0.1, mqtt.example.jp]   # the broker certificate's SAN
      port: 8883
      bind: 0.0.0.0
      require_certificate: true          # clients must present a certificate signed by the CA
      use_identity_as_username: false    # true: the certificate CN is the username, no password
    cloud:
      ingest_username: hinode-ingest     # the ingest: stores what agents send; never sends commands
      api_username: hinode-api           # the API (cloud.yaml's api.mqtt next to an in-process ingest):
                                         # reads agent status, the only identity that sends commands
      share_group: hinode-ingest
    sites:
      hitachi-omika: [edge-01, edge-02]
      plant-1: [edge-01]
    fleets:                              # vehicles: each LTE module is an agent of its fleet
      hitachi-scooters: {prefix: sc-, count: 40, vehicles: [sm-001, sm-002]}   # sc-001 .. sc-040 and two more

An agent's MQTT username is ``<agent>@<site>`` ('@' is not allowed in an id, so it is
unambiguous; the same agent id may exist at two sites). A fleet is a site whose agents are
vehicles: ``sc-001@hitachi-scooters`` may publish its own telemetry and status (never on the
personal topic) and read its own commands.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hinode.contract import ID_PATTERN, Ident


class InventoryError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSection(_Strict):
    hostnames: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    port: int = Field(default=8883, ge=1, le=65535)
    bind: str = "0.0.0.0"
    require_certificate: bool = True
    use_identity_as_username: bool = False


class CloudSection(_Strict):
    ingest_username: Ident = "hinode-ingest"
    api_username: Ident = "hinode-api"
    share_group: Ident = "hinode-ingest"


class FleetSection(_Strict):
    vehicles: list[Ident] = Field(default_factory=list, description="vehicle ids, each its own MQTT identity")
    prefix: str = Field(default="", pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,55})?$",
                        description="with count: <prefix>001 .. <prefix><count>")
    count: int = Field(default=0, ge=0, le=100_000)

    def vehicle_ids(self) -> list[str]:
        width = max(3, len(str(self.count)))
        return list(self.vehicles) + [f"{self.prefix}{n:0{width}d}" for n in range(1, self.count + 1)]


class Inventory(_Strict):
    broker: BrokerSection = Field(default_factory=BrokerSection)
    cloud: CloudSection = Field(default_factory=CloudSection)
    sites: dict[Ident, list[Ident]] = Field(default_factory=dict)
    fleets: dict[Ident, FleetSection] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _someone(self) -> "Inventory":
        if not self.sites and not self.fleets:
            raise ValueError("sites: list at least one site with its agents (or a fleet with its vehicles)")
        for fleet, section in self.fleets.items():
            if fleet in self.sites:
                raise ValueError(f"fleets.{fleet}: {fleet!r} is also a site; a fleet is a site of its own")
            ids = section.vehicle_ids()
            if len(set(ids)) != len(ids):
                raise ValueError(f"fleets.{fleet}: a vehicle id appears twice")
            if not ids:
                raise ValueError(f"fleets.{fleet}: no vehicles (give vehicles: [...] or prefix and count)")
        return self

    @field_validator("sites")
    @classmethod
    def _unique_agents(cls, sites: dict[str, list[str]]) -> dict[str, list[str]]:
        for site, agents in sites.items():
            if len(set(agents)) != len(agents):
                raise ValueError(f"site {site!r} lists an agent twice")
        return sites

    def agents(self) -> list[tuple[str, str]]:
        """Every (site, agent) identity: the sites' agents, then the fleets' vehicles."""
        return [(site, agent) for site, agents in self.sites.items() for agent in agents] + self.vehicles()

    def vehicles(self) -> list[tuple[str, str]]:
        return [(fleet, vehicle) for fleet, section in self.fleets.items() for vehicle in section.vehicle_ids()]


def agent_username(site: str, agent: str) -> str:
    return f"{agent}@{site}"


def load_inventory(path: Path | str) -> Inventory:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            hint = f" (ids match {ID_PATTERN})" if "pattern" in err["type"] else ""
            lines.append(f"{path}: {key}: {err['msg']}{hint}")
        raise InventoryError("\n".join(lines)) from None
