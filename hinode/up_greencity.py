"""``hinode up``'s green industrial city (issue 10): the domains' config, a year of history, the bills
of the factory without meters, the recompute/settle/forecast calls and the live SME publisher.

For ``hinode.up.Platform``::

    sections = domain_sections(agent, with_plant)        # co2 / interchange / forecast, design.md shapes
    kept, problems = usable_sections(sections)           # only domains that are installed and accept them
    demo = GreenCity(data_dir, influx_url, with_plant, say)
    demo.run(model_time_s, api_url)                      # on a thread: backfill (seconds; skipped when done
                                                         # up to now), then bills, recompute, settle, forecast
    live_publisher_argv(mqtt_port)                       # python -m simulators greencity ...

History model and numbers: simulators/greencity/README.md.
"""

from __future__ import annotations

import importlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from simulators.greencity.sites import SITES, SME_SITES, UNMETERED_BASELINE_T_CO2, UNMETERED_SITE

JST = timezone(timedelta(hours=9))
SEED = 0
RETAILER, MENU = "tepco-ep", "standard"       # Hitachi City is in TEPCO's area
COMMUNITY = "omika-pv"
PLANT = "hitachi-omika"
FRESH_MS = 3_600_000                          # a backfill ending less than this ago is not redone
MARKER = "greencity-backfill.json"
GREENCITY_DOMAINS = ("co2", "interchange", "forecast")


def domain_sections(agent: str = "edge-01", with_plant: bool = True) -> dict[str, dict]:
    """The ``domains:`` sections for the demo sites (design.md "Config")."""
    metered = [s for s in SITES.values() if with_plant or not s.kwp]
    co2_sites = [{"id": s.id, "name": s.name, "retailer": RETAILER, "menu": MENU,
                  "grid_meters": [{"device": s.meters[0].device, "metric": "energy_import"}],
                  "baseline_fy": 2013, "baseline_t_co2": s.baseline_t_co2} for s in metered]
    co2_sites.append({"id": UNMETERED_SITE, "name": "Machining shop D (bills only)", "retailer": RETAILER,
                      "menu": MENU, "grid_meters": [], "baseline_fy": 2013,
                      "baseline_t_co2": UNMETERED_BASELINE_T_CO2})
    sections: dict[str, dict] = {"co2": {"location_factor_kg_per_kwh": None, "sites": co2_sites}}
    consumers = [{"site": site, "role": "consumer",
                  "meters": {"consumption": {"device": "main-meter", "metric": "energy_import"}},
                  "static_share": 0.25, "priority": i + 1} for i, site in enumerate(SME_SITES)]
    targets = [{"site": site, "target": "demand", "meters": [{"device": "main-meter", "metric": "energy_import"}]}
               for site in SME_SITES]
    if with_plant:
        producer = {"site": PLANT, "role": "producer",
                    "meters": {"generation": {"device": "pv-inverter", "metric": "energy_export"},
                               "export": {"device": "grid-meter", "metric": "energy_export"}},
                    "charging": {"agent": agent, "source": "chargers", "max_kw": 60}}
        sections["interchange"] = {"communities": [{
            "id": COMMUNITY, "name": "Omika rooftop PV community", "price_yen_per_kwh": 16.0, "grace_s": 7200,
            "rules": [{"from_month": "2025-04", "rule": "pro_rata"}], "participants": [producer, *consumers]}]}
        targets.append({"site": PLANT, "target": "pv", "meters": [{"device": "pv-inverter", "metric": "energy_export"}],
                        "kwp": SITES[PLANT].kwp})
    sections["forecast"] = {"targets": targets, "weather_csv": None}
    return sections


def usable_sections(sections: dict[str, dict]) -> tuple[dict[str, dict], list[str]]:
    """The sections whose domain is installed and whose config model accepts them; a line for each left out
    (the cloud refuses to start on an unknown domain or a bad section, and the demo should still run)."""
    from pydantic import ValidationError

    kept, problems = {}, []
    for name, section in sections.items():
        try:
            domain = importlib.import_module(f"cloud.domains.{name}").DOMAIN
        except Exception as exc:                  # not written yet, or failing to import: say so, go on
            problems.append(f"domain {name!r} is not available ({type(exc).__name__}: {exc}); "
                            f"its section is left out of cloud.yaml")
            continue
        try:
            if domain.config_model is not None:
                domain.config_model.model_validate(section)
        except ValidationError as exc:
            first = exc.errors()[0]
            problems.append(f"domains.{name}: {'.'.join(map(str, first['loc']))}: {first['msg']}; "
                            f"the section is left out of cloud.yaml")
            continue
        kept[name] = section
    return kept, problems


def machining_inputs(today: date) -> list[dict]:
    """``sme-machining``'s last 13 months: electricity bills (kWh, yen), city gas 13A every month and
    kerosene in the heating season (Nov-Mar), as a small machining shop would have them."""
    entries = []
    year, month = today.year, today.month
    for back in range(13, 0, -1):
        y, m = (year * 12 + month - 1 - back) // 12, (year * 12 + month - 1 - back) % 12 + 1
        season = {1: 1.12, 2: 1.10, 3: 1.0, 4: 0.92, 5: 0.9, 6: 0.97, 7: 1.12, 8: 1.18, 9: 1.02, 10: 0.93,
                  11: 0.97, 12: 1.08}[m]
        kwh = round(14_500 * season, -1)
        entries.append({"kind": "electricity", "item": f"{RETAILER}/{MENU}", "month": f"{y}-{m:02d}",
                        "amount": kwh, "unit": "kWh", "cost_yen": round(kwh * 27.5)})
        gas = 0.9 if m in (12, 1, 2, 3) else 0.55             # 千m3: washing and heat treatment, plus heating
        entries.append({"kind": "fuel", "item": "city_gas_13a", "month": f"{y}-{m:02d}", "amount": gas,
                        "unit": "千m3", "cost_yen": round(gas * 1000 * 160)})
        if m in (11, 12, 1, 2, 3):
            litres = 600 if m in (12, 1, 2) else 300
            entries.append({"kind": "fuel", "item": "kerosene", "month": f"{y}-{m:02d}", "amount": litres / 1000,
                            "unit": "kL", "cost_yen": litres * 115})
    return entries


def history_start_ms(now_ms: int) -> int:
    """The first day of the month a year before this one (JST): 12 whole months plus this one so far."""
    today = datetime.fromtimestamp(now_ms / 1000, JST)
    return int(datetime(today.year - 1, today.month, 1, tzinfo=JST).timestamp() * 1000)


def live_publisher_argv(python: list[str], mqtt_port: int) -> list[str]:
    return [*python, "-m", "simulators", "greencity", "--mqtt-port", str(mqtt_port), "--sites", ",".join(SME_SITES),
            "--interval", "10", "--seed", str(SEED)]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, JST).isoformat(timespec="seconds")


@dataclass
class GreenCity:
    data_dir: Path
    influx_url: str
    with_plant: bool
    say: Callable[[str], None]
    token: str = ""                                # hinode up's own API token (the API has authentication on)
    range_ms: tuple[int, int] | None = None        # what this run backfilled (None: nothing)
    results: dict[str, str] = field(default_factory=dict)

    def sites(self) -> list[str]:
        return [s for s in SITES if self.with_plant or not SITES[s].kwp]

    def run(self, live_start_s: float, api_url: str) -> None:
        """Backfill, then feed the API (``hinode up`` runs this on a thread beside its start-up)."""
        try:
            self.backfill(live_start_s)
            self.feed_api(api_url)
        except Exception as exc:            # the demo's extras must not take the platform down
            self.say(f"green city: failed: {type(exc).__name__}: {exc}")

    def backfill(self, model_time_s: float, now_ms: int | None = None) -> None:
        """The history up to now, or from where the last run's ended (SME sites only: the plant's live
        counters restarted with the PV site simulator, so its pause stays a gap, as it happened)."""
        from cloud.config import InfluxConfig
        from cloud.influx import InfluxClient
        from hinode.up_backfill import backfill
        from simulators.greencity.omika import live_start_kwh

        now_ms = now_ms or int(time.time() * 1000)
        marker_path = self.data_dir / MARKER
        marker = json.loads(marker_path.read_text()) if marker_path.exists() else {}
        start_ms, sites = history_start_ms(now_ms), self.sites()
        if marker.get("seed") == SEED and marker.get("start_ms", now_ms) <= start_ms:
            if now_ms - marker["end_ms"] < FRESH_MS:
                self.say(f"green city: history already backfilled up to {iso(marker['end_ms'])}; not redone")
                return
            start_ms, sites = max(start_ms, marker["end_ms"]), [s for s in sites if not SITES[s].kwp]
        with InfluxClient(InfluxConfig(url=self.influx_url)) as client:
            client.create_database()
            result = backfill(client, start_ms, now_ms, sites, SEED, live_start_kwh(model_time_s))
        self.range_ms = (start_ms, now_ms)
        marker_path.write_text(json.dumps({"seed": SEED, "start_ms": marker.get("start_ms", start_ms),
                                           "end_ms": now_ms}, indent=2))
        self.say(f"green city: backfilled {', '.join(sites)} from {iso(start_ms)} to {iso(now_ms)}: "
                 f"{result.lines} lines in {result.seconds:.1f} s")

    def feed_api(self, api_url: str) -> None:
        """Bills of the unmetered site, then the domains' range computations over the backfilled history.
        A route that is not there (a domain not installed) is reported and skipped."""
        today = datetime.now(JST).date()
        calls = [("co2 inputs", f"/api/co2/sites/{UNMETERED_SITE}/inputs", machining_inputs(today))]
        if self.range_ms:
            span = {"start": iso(self.range_ms[0]), "end": iso(self.range_ms[1])}
            calls.append(("co2 recompute", "/api/co2/recompute?" + urllib.parse.urlencode(span), None))
            if self.with_plant:
                calls.append(("interchange settle", f"/api/interchange/communities/{COMMUNITY}/settle?"
                              + urllib.parse.urlencode(span), None))
        calls.append(("forecast run", f"/api/forecast/run?date={today + timedelta(days=1)}", None))
        for what, path, body in calls:
            self.results[what] = outcome = self._post(api_url + path, body)
            self.say(f"green city: {what}: {outcome}")
        self.say("green city: ready")

    def _post(self, url: str, body) -> str:
        data = json.dumps(body if body is not None else {}).encode()
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=600) as resp:
                answer = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code in (404, 405):
                return f"not there (HTTP {exc.code} {detail[:160]}): skipped"
            return f"failed with HTTP {exc.code}: {detail}"
        except (OSError, ValueError) as exc:
            return f"failed: {exc}"
        took = time.perf_counter() - began
        if isinstance(answer, dict):
            figures = {k: v for k, v in answer.items() if isinstance(v, (int, float, str)) and k != "detail"}
            return f"ok in {took:.1f} s {json.dumps(figures)[:200]}"
        return f"ok in {took:.1f} s"
