"""``hinode up``'s mobility: a city fleet on MQTT and a partner operator known only by its GBFS feed.

- ``sim-fleet``: 40 e-scooters and 4 walking-speed vehicles of fleet ``hitachi-scooters``, each its own
  MQTT agent (``python -m simulators fleet``), moving through Hitachi City; one speeds through a
  station's slow zone, one parks in a forecourt, one tips over, one goes silent for a while.
- ``sim-partner-gbfs``: a partner's 12 e-scooters published only as a GBFS **2.3** feed (another
  operator's backend); a mobility gateway agent (``mobility-gw`` at site ``hitachi-mobility``) polls it
  with its ``gbfs`` source, so its vehicles reach the fleet domain through the same wire contract.
- The cloud's fleet domain follows both (its worker runs in ``cloud serve``); its public GBFS 3.0 feed
  republishes only the city's own fleet.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CITY_FLEET = "hitachi-scooters"
PARTNER_FLEET = "partner-scooters"
GATEWAY_SITE, GATEWAY_AGENT = "hitachi-mobility", "mobility-gw"


@dataclass
class FleetDemo:
    data: Path
    scooters: int = 40
    slow: int = 4
    partner_scooters: int = 12
    open_violations: int | None = None      # the status line's figures (None: no answer)
    live: int | None = None
    known: int | None = None

    @property
    def enabled(self) -> bool:
        return self.scooters + self.slow > 0

    def domain_section(self) -> dict:
        """``domains.fleet`` of data/cloud.yaml."""
        return {"state_dir": str(self.data / "fleet"),
                "gbfs": {"system_id": "hinode-hitachi", "fleets": [CITY_FLEET],
                         "feed_contact_email": "mobility@city.hitachi.example"}}

    def simulator_argv(self, python: list[str], mqtt_port: int, gbfs_port: int) -> list[str]:
        """The city fleet on MQTT (plain loopback broker, like every demo agent); also its own GBFS 3.0 view."""
        return [*python, "-m", "simulators", "fleet", "--mqtt-port", str(mqtt_port), "--fleet", CITY_FLEET,
                "--scooters", str(self.scooters), "--slow", str(self.slow), "--misbehave",
                "--state-dir", str(self.data / "fleet-sim"), "--gbfs-port", str(gbfs_port), "--gbfs-version", "3.0"]

    def partner_argv(self, python: list[str], gbfs_port: int) -> list[str]:
        """A partner operator whose backend publishes only GBFS 2.3 (no MQTT)."""
        return [*python, "-m", "simulators", "fleet", "--fleet", PARTNER_FLEET, "--scooters",
                str(self.partner_scooters), "--slow", "0", "--seed", "7", "--gbfs-port", str(gbfs_port),
                "--gbfs-version", "2.3"]

    def gateway_site_config(self, mqtt_port: int, partner_port: int, metrics_port: int) -> dict:
        """The mobility gateway's site.yaml: an edge agent of its own polling the partner's GBFS feed."""
        return {
            "site": GATEWAY_SITE, "agent": GATEWAY_AGENT,
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "queue": {"path": str((self.data / "mobility-gw" / "outbox.db").resolve()), "max_bytes": "64MiB"},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "health_interval_s": 5,
            "sources": [{"type": "gbfs", "name": "partner-gbfs",
                         "url": f"http://127.0.0.1:{partner_port}/gbfs/gbfs.json", "fleet": PARTNER_FLEET}],
        }

    def collect(self, api_url: str, token: str) -> None:
        """Vehicles live / known and open violations, for the status line."""
        try:
            vehicles = _get_json(f"{api_url}/api/fleet/vehicles", token)["vehicles"]
            violations = _get_json(f"{api_url}/api/fleet/violations?open=true&start=-7d", token)
        except (OSError, ValueError, KeyError):
            self.live = self.known = self.open_violations = None
            return
        self.known = len(vehicles)
        self.live = sum(1 for v in vehicles if v.get("online"))
        self.open_violations = int(violations.get("count", 0))

    def status_part(self) -> str:
        if self.known is None:
            return "fleet: no answer"
        return f"vehicles live {self.live}/{self.known} | open violations {self.open_violations}"


def _get_json(url: str, token: str, timeout: float = 2.0):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())
