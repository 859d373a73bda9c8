"""``hinode up``: the whole pipeline on one machine, with simulated factories.

Starts, in a data directory: a private Mosquitto and InfluxDB, the cloud ingest +
API + board, Modbus/SunSpec/OPC UA meter simulators and one edge agent polling all
of them; prints the board URL and a live status line. The green-city demo (hinode/up_greencity.py)
writes data/cloud.yaml for the co2/interchange/forecast domains, backfills a year of history for
its sites, enters the bills of its unmetered factory, asks the domains to compute that year, and
runs the SME sites live (``python -m simulators greencity``). A child that dies is restarted
with back-off (``hinode.supervisor``) and the status line counts the restarts; a service
that cannot be brought back stops everything with exit code 1. Ctrl-C stops everything in
reverse order (exit code 0). A second run reuses the data directory (and its ports when free).
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import datetime, time as clock_time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from hinode import services
from hinode.services import ClientProcess, ManagedProcess, free_port, port_open
from hinode.supervisor import ServiceGaveUp, Supervisor
from hinode.up_greencity import GreenCity, domain_sections, live_publisher_argv, usable_sections
from hinode.up_fleet import FleetDemo
from hinode.up_metrics import UpFigures, samples, serve_up_metrics
from hinode.up_vitals import KIT_DEVICES, NurseVisits


@dataclass
class Plan:
    data_dir: Path
    modbus_meters: int = 12
    sunspec_meters: int = 2
    opcua_meters: int = 8
    chargers: int = 10                  # workplace chargers (odd ids OCPP 1.6J, even 2.0.1) with a PV site
    poll_s: float = 1.0
    api_port: int = 8080
    site: str = "hitachi-omika"
    agent: str = "edge-01"
    greencity: bool = True              # the green-city demo: a year of history, its domains, live SME sites
    vitals: bool = True                 # a visiting nurse's kit (virtual BLE devices), two patients, consent
    scooters: int = 40                  # the city's e-scooters on MQTT (0 and slow 0: no fleet)
    slow: int = 4                       # walking-speed mobility vehicles


# Each service's preferred port; a taken one is replaced by a free port, and data/ports.json keeps what a run
# used so the next run (and the board URL) keeps it.
DEFAULT_PORTS = {"mqtt": 18830, "influx": 18086, "api": 8080, "modbus": 15020, "sunspec": 15021, "opcua": 14840,
                 "agent_metrics": 19108, "up_metrics": 19109, "pv_site": 15022, "ocpp": 19000, "ev_feed": 15030,
                 "ble_hci": 17001, "ble_control": 17002, "kit_metrics": 19110, "nurse_page": 18088,
                 "fleet_gbfs": 18190, "partner_gbfs": 18191, "mobility_metrics": 19111}


def _ports(data_dir: Path, wanted: dict[str, int]) -> dict[str, int]:
    """Reuse the ports of the last run when free, so the board URL stays the same."""
    path = data_dir / "ports.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    ports = {}
    for name, default in wanted.items():
        for candidate in (previous.get(name), default):
            if candidate and candidate not in ports.values() and not port_open("127.0.0.1", candidate):
                ports[name] = candidate
                break
        else:
            ports[name] = free_port()
    path.write_text(json.dumps(ports, indent=2))
    return ports


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _http_json(url: str, timeout: float = 2.0, token: str = ""):
    return json.loads(_http_text(url, timeout, token))


def _http_text(url: str, timeout: float = 2.0, token: str = "") -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return resp.read().decode()


def _wait_http(url: str, what: str, proc: ManagedProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running:
            raise services.ServiceError(f"{what} exited; log: {proc.log_path}\n"
                                        + proc.log_path.read_text(errors="replace")[-2000:])
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise services.ServiceError(f"{what} not ready at {url} within {timeout}s; log: {proc.log_path}")


def _wait_port(port: int, what: str, proc: ManagedProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if not proc.running or time.monotonic() > deadline:
            raise services.ServiceError(f"{what} is not listening on port {port}; log: {proc.log_path}")
        time.sleep(0.1)


def _say(message: str) -> None:
    """An event line (a restart, a service back) between status lines; on a terminal below the live one."""
    print(("\n" if sys.stdout.isatty() else "") + f"hinode: {message}", file=sys.stderr, flush=True)


DEMO_TZ = ZoneInfo("Asia/Tokyo")
DEMO_MODEL_TIME = clock_time(10, 30)


def demo_model_time(now: datetime | None = None) -> str:
    """When the PV and commuter models start: 10:30 JST of the latest weekday, so that whenever
    ``hinode up`` runs, cars are parked at work and the sun is up; timestamps stay real time."""
    day = (now or datetime.now(DEMO_TZ)).astimezone(DEMO_TZ).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, DEMO_MODEL_TIME).strftime("%Y-%m-%dT%H:%M")


def charger_ids(plan: Plan) -> list[str]:
    return [f"CP{i:02d}" for i in range(1, plan.chargers + 1)]


def charging_sources(plan: Plan, ports: dict[str, int], secrets_file: Path | None) -> list[dict]:
    """The PV site (inverter + grid meter over SunSpec) and the chargers with their controller."""
    modes = {1: "now", 2: "minpv"}        # the rest charge from PV surplus only
    chargers = [{"id": f"CP{i:02d}", "circuit": "car-park-a" if i % 2 else "car-park-b",
                 "mode": modes.get(i, "pv"), "max_current_a": 16}
                for i in range(1, plan.chargers + 1)]
    return [
        {"type": "sunspec", "name": "pv-site", "transport": "tcp", "host": "127.0.0.1", "port": ports["pv_site"],
         "poll_interval_s": 2, "devices": [{"id": "pv-inverter", "unit": 1}, {"id": "grid-meter", "unit": 2}]},
        {"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": ports["ocpp"], "security_profile": 1,
         "secrets_file": str(secrets_file), "meter_value_interval_s": 10, "chargers": chargers,
         "auth_list": [f"EMP{i:04d}" for i in range(1, plan.chargers + 1)],
         "controller": {"interval_s": 10, "grid_meter": {"device": "grid-meter", "metric": "power_total"},
                        "pv_meters": [{"device": "pv-inverter", "metric": "power_total"}], "site_limit_kw": 150,
                        "circuits": [{"name": "car-park-a", "limit_a": 63}, {"name": "car-park-b", "limit_a": 63}]}},
    ]


def site_config(plan: Plan, ports: dict[str, int], charger_secrets: Path | None = None) -> dict:
    """The edge agent's site.yaml for the simulated factory."""
    modbus_devices = [{"id": f"meter-{i:02d}", "unit": i, "profile": "hinode-sim-meter"}
                      for i in range(1, plan.modbus_meters + 1)]
    opcua_devices = [{"id": f"opcua-meter-{i:02d}", "profile": "hinode-sim-meter-opcua", "node_name": f"Meter{i:02d}"}
                     for i in range(1, plan.opcua_meters + 1)]
    sunspec_devices = [{"id": f"sunspec-meter-{i:02d}", "unit": i} for i in range(1, plan.sunspec_meters + 1)]
    sources = [{"type": "modbus", "name": "hall-a-modbus", "transport": "tcp", "host": "127.0.0.1",
                "port": ports["modbus"], "poll_interval_s": plan.poll_s, "devices": modbus_devices}]
    if sunspec_devices:
        sources.append({"type": "sunspec", "name": "rooftop-sunspec", "transport": "tcp", "host": "127.0.0.1",
                        "port": ports["sunspec"], "poll_interval_s": plan.poll_s, "devices": sunspec_devices})
    if opcua_devices:
        sources.append({"type": "opcua", "name": "line-2-opcua", "endpoint": f"opc.tcp://127.0.0.1:{ports['opcua']}/hinode/",
                        "mode": "subscribe", "publishing_interval_ms": int(plan.poll_s * 1000),
                        "sampling_interval_ms": int(plan.poll_s * 500), "devices": opcua_devices})
    if plan.chargers:
        sources += charging_sources(plan, ports, charger_secrets)
    return {
        "site": plan.site, "agent": plan.agent,
        "mqtt": {"host": "127.0.0.1", "port": ports["mqtt"]},
        "queue": {"path": str((plan.data_dir / "edge" / "outbox.db").resolve()), "max_bytes": "256MiB"},
        "metrics": {"listen": f"127.0.0.1:{ports['agent_metrics']}"},
        "health_interval_s": 5,
        "sources": sources,
    }


class Platform:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.data = plan.data_dir.resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "logs").mkdir(exist_ok=True)
        self.ports = _ports(self.data, {**DEFAULT_PORTS, "api": plan.api_port})
        self.procs: list[ManagedProcess] = []
        self.supervisor = Supervisor(say=_say)
        self.figures = UpFigures()
        self.metrics_server = None
        self.greencity: GreenCity | None = None
        self.greencity_sites: tuple[int, int] | None = None     # (live, expected) for the status line
        self.people = NurseVisits(self.data, _say)     # the API's logins (authentication is on), the nurse's kit
        self.kit_devices: int | None = None            # nurse kit devices connected, for the status line
        self.fleet = FleetDemo(self.data, plan.scooters, plan.slow)

    def _proc(self, name: str, argv: list[str], port: int) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.data / "logs" / f"{name}.log", port,
                              env={"PYTHONUNBUFFERED": "1"})
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        p, plan = self.ports, self.plan
        broker = services.mosquitto(self.data / "mosquitto", p["mqtt"])
        influx = services.influxdb(self.data / "influxdb", p["influx"])
        influx.name = "influxdb"
        for proc in (broker, influx):
            self.procs.append(proc)
            proc.start(timeout=60)
        model_time = demo_model_time()
        cloud_yaml = self._write_cloud_yaml()
        cloud = self._proc("cloud", _python("-m", "cloud", "serve", "--config", str(cloud_yaml),
                                            "--mqtt-port", str(p["mqtt"]),
                                            "--influx-url", f"http://127.0.0.1:{p['influx']}",
                                            "--port", str(p["api"])), p["api"])
        cloud.start(timeout=60)
        _wait_http(f"http://127.0.0.1:{p['api']}/readyz", "cloud", cloud)
        if plan.greencity:      # the history and the domains' calls run beside the rest of the start-up
            self.greencity = GreenCity(self.data, f"http://127.0.0.1:{p['influx']}", bool(plan.chargers), _say,
                                       token=self.people.up_token)
            live_start_s = datetime.fromisoformat(model_time).replace(tzinfo=DEMO_TZ).timestamp()
            threading.Thread(target=self.greencity.run, args=(live_start_s, f"http://127.0.0.1:{p['api']}"),
                             name="greencity", daemon=True).start()
        sims = [self._proc("sim-modbus", _python("-m", "simulators", "modbus", "--port", str(p["modbus"]),
                                                 "--meters", str(plan.modbus_meters)), p["modbus"])]
        if plan.sunspec_meters:
            sims.append(self._proc("sim-sunspec", _python("-m", "simulators", "modbus", "--sunspec", "--port",
                                                          str(p["sunspec"]), "--meters", str(plan.sunspec_meters)),
                                   p["sunspec"]))
        if plan.opcua_meters:
            sims.append(self._proc("sim-opcua", _python("-m", "simulators", "opcua", "--port", str(p["opcua"]),
                                                        "--meters", str(plan.opcua_meters)), p["opcua"]))
        if plan.chargers:
            sims.append(self._proc("sim-pv-site", _python("-m", "simulators", "modbus", "--sunspec", "--pv-site",
                                                          "--port", str(p["pv_site"]), "--start", model_time,
                                                          "--pv-kwp", "400", "--site-load-kw", "150",
                                                          "--ev-port", str(p["ev_feed"])), p["pv_site"]))
        if plan.vitals:         # registry, consents, today's visits and the kit's schedule before the kit starts
            self.people.prepare(f"http://127.0.0.1:{p['api']}", f"http://127.0.0.1:{p['influx']}")
            sims.append(self._proc("sim-ble", self.people.simulator_argv(_python(), p["ble_hci"], p["ble_control"]),
                                   p["ble_control"]))
        if self.fleet.enabled:      # vehicles publish only once they hear the ingest's heartbeat
            sims.append(self._proc("sim-fleet", self.fleet.simulator_argv(_python(), p["mqtt"], p["fleet_gbfs"]),
                                   p["fleet_gbfs"]))
            sims.append(self._proc("sim-partner-gbfs", self.fleet.partner_argv(_python(), p["partner_gbfs"]),
                                   p["partner_gbfs"]))
        for sim in sims:
            sim.start(timeout=60)
        site_yaml = self.data / "edge" / "site.yaml"
        site_yaml.parent.mkdir(exist_ok=True)
        secrets_file, passwords_file = self._charger_passwords()
        site_yaml.write_text(yaml.safe_dump(site_config(plan, p, secrets_file), sort_keys=False))
        agent = self._proc("edge-agent", _python("-m", "edge_agent", "run", "--config", str(site_yaml)),
                           p["agent_metrics"])
        agent.start(timeout=60)
        if plan.vitals:
            kit_yaml = self.people.kit_dir / "site.yaml"
            kit_yaml.write_text(yaml.safe_dump(self.people.kit_site_config(
                p["mqtt"], p["ble_hci"], p["kit_metrics"], p["nurse_page"]), sort_keys=False, allow_unicode=True))
            self._proc("nurse-kit", _python("-m", "edge_agent", "run", "--config", str(kit_yaml)),
                       p["kit_metrics"]).start(timeout=60)
        if self.fleet.enabled:      # the partner's vehicles come in through a gateway's GBFS poller
            gateway_yaml = self.data / "mobility-gw" / "site.yaml"
            gateway_yaml.parent.mkdir(exist_ok=True)
            gateway_yaml.write_text(yaml.safe_dump(self.fleet.gateway_site_config(
                p["mqtt"], p["partner_gbfs"], p["mobility_metrics"]), sort_keys=False))
            self._proc("mobility-gw", _python("-m", "edge_agent", "run", "--config", str(gateway_yaml)),
                       p["mobility_metrics"]).start(timeout=60)
        if plan.chargers:
            _wait_port(p["ocpp"], "the agent's OCPP central system", agent)
            chargers = ClientProcess("sim-chargers", _python(
                "-m", "simulators", "ocpp", "--chargers", str(plan.chargers), "--version", "mixed",
                "--url", f"ws://127.0.0.1:{p['ocpp']}", "--passwords-file", str(passwords_file), "--model-time", model_time,
                "--meter-interval", "10", "--ev-port", str(p["ev_feed"])),
                self.data / "logs" / "sim-chargers.log", env={"PYTHONUNBUFFERED": "1"})
            self.procs.append(chargers)
            chargers.start(timeout=60)
        if self.greencity is not None:
            publisher = ClientProcess("sim-greencity", live_publisher_argv(_python(), p["mqtt"]),
                                      self.data / "logs" / "sim-greencity.log", env={"PYTHONUNBUFFERED": "1"})
            self.procs.append(publisher)
            publisher.start(timeout=60)
        for proc in self.procs:
            self.supervisor.watch(proc)

    def _write_cloud_yaml(self) -> Path:
        """data/cloud.yaml: the green-city domains' sections (only those installed and accepting them)."""
        path = self.data / "cloud.yaml"
        sections = {}
        if self.plan.greencity:
            sections, problems = usable_sections(domain_sections(self.plan.agent, bool(self.plan.chargers)))
            for problem in problems:
                _say(f"green city: {problem}")
        if self.plan.vitals:
            sections["vitals"] = self.people.domain_section()
        if self.fleet.enabled:
            sections["fleet"] = self.fleet.domain_section()
        path.write_text("# written by hinode up at every start (hinode/up_greencity.py, hinode/up_vitals.py)\n"
                        + yaml.safe_dump({"api": self.people.api_section(), "domains": sections},
                                         sort_keys=False, allow_unicode=True))
        path.chmod(0o600)
        return path

    def _charger_passwords(self) -> tuple[Path, Path]:
        """The demo chargers' Basic-auth passwords (security profile 1), one per charger, kept with the
        data: the agent's secrets file (YAML) and the same for the simulated chargers (ID PASSWORD lines)."""
        secrets_file = self.data / "edge" / "charger-secrets.yaml"
        passwords_file = self.data / "edge" / "charger-passwords"
        known = yaml.safe_load(secrets_file.read_text()) if secrets_file.exists() else {}
        passwords = {cid: known.get(cid) or secrets.token_urlsafe(16) for cid in charger_ids(self.plan)}
        for path, text in ((secrets_file, yaml.safe_dump(passwords)),
                           (passwords_file, "".join(f"{cid} {pw}\n" for cid, pw in passwords.items()))):
            path.write_text(text)
            path.chmod(0o600)
        return secrets_file, passwords_file

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()

    # ---------------------------------------------------------------- status line

    def collect_figures(self) -> UpFigures:
        """The status line's figures, read from the agent's and the API's HTTP endpoints (None: no answer)."""
        p = self.ports
        figures = UpFigures()
        try:
            m = samples(_http_text(f"http://127.0.0.1:{p['agent_metrics']}/metrics"))
            figures.readings_per_s = m["hinode_agent_readings_per_s"]
            figures.queue_envelopes = m["hinode_agent_queue_envelopes"]
            figures.dropped_readings = m["hinode_agent_dropped_readings_total"]
        except (OSError, KeyError, ValueError):
            figures.readings_per_s = figures.queue_envelopes = figures.dropped_readings = None
        try:
            devices = _http_json(f"http://127.0.0.1:{p['api']}/api/devices", token=self.people.up_token)
            devices = devices.get("devices", devices) if isinstance(devices, dict) else devices
            # the edge site's meters; the green-city sites have their own count
            meters = [d for d in devices
                      if d.get("kind") != "agent" and d.get("site", self.plan.site) == self.plan.site]
            if self.greencity is not None:
                live = {d.get("site") for d in devices if d.get("kind") != "agent" and d.get("online")}
                expected = [s for s in self.greencity.sites() if s != self.plan.site]
                self.greencity_sites = (sum(1 for s in expected if s in live), len(expected))
            figures.devices_online = sum(1 for d in meters if d.get("online"))
            figures.devices_known = len(meters)
            figures.missing_readings = sum((d.get("completeness") or {}).get("missing") or 0 for d in meters)
        except (OSError, ValueError):
            pass
        try:
            m = samples(_http_text(f"http://127.0.0.1:{p['api']}/metrics", token=self.people.up_token))
            lag_s = m.get("hinode_ingest_lag_p50_seconds")
            if lag_s is None and "hinode_ingest_lag_p50_ms" in m:
                lag_s = m["hinode_ingest_lag_p50_ms"] / 1000
            figures.ingest_lag_p50_seconds = lag_s
        except (OSError, ValueError):
            pass
        if self.plan.vitals:
            try:
                kit = samples(_http_text(f"http://127.0.0.1:{p['kit_metrics']}/metrics"))
                self.kit_devices = int(kit["hinode_agent_devices_online"])
            except (OSError, KeyError, ValueError):
                self.kit_devices = None
        if self.fleet.enabled:
            self.fleet.collect(f"http://127.0.0.1:{p['api']}", self.people.up_token)
        figures.service_restarts = self.supervisor.restarts()
        return figures

    def status(self) -> str:
        """One status line; also keeps its figures for /metrics."""
        f = self.figures = self.collect_figures()
        if f.readings_per_s is not None:
            parts = [f"readings/s {f.readings_per_s:7.1f}", f"queue {int(f.queue_envelopes)}",
                     f"dropped {int(f.dropped_readings)}"]
        else:
            parts = ["agent: no answer"]
        if f.devices_known is not None:
            parts += [f"devices online {f.devices_online}/{f.devices_known}", f"missing readings {f.missing_readings}"]
        else:
            parts.append("cloud: no answer")
        if f.ingest_lag_p50_seconds is not None:
            parts.append(f"ingest lag p50 {f.ingest_lag_p50_seconds * 1000:.0f} ms")
        if self.greencity_sites is not None:
            parts.append(f"green-city sites live {self.greencity_sites[0]}/{self.greencity_sites[1]}")
        if self.plan.vitals:
            kit = "no answer" if self.kit_devices is None else f"{self.kit_devices}/{len(KIT_DEVICES)}"
            parts.append(f"nurse kit devices {kit}")
        if self.fleet.enabled:
            parts.append(self.fleet.status_part())
        restarts = self.supervisor.summary()
        if restarts:
            parts.append(restarts)
        return " | ".join(parts)

    def current_figures(self) -> UpFigures:
        """For a /metrics scrape (another thread): the last status line's figures, restarts as of now."""
        return replace(self.figures, service_restarts=self.supervisor.restarts())

    def serve_metrics(self) -> str | None:
        """Serve ``hinode up``'s own /metrics (hinode.up_metrics); its URL, or None when it cannot bind."""
        try:
            self.metrics_server = serve_up_metrics(self.current_figures, listen=f"127.0.0.1:{self.ports['up_metrics']}")
        except OSError as exc:
            _say(f"metrics not served on port {self.ports['up_metrics']}: {exc}")
            return None
        return self.metrics_server.url


def run(plan: Plan) -> int:
    platform = Platform(plan)
    stopping = False

    def _stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        print(f"hinode: starting in {platform.data} ...", flush=True)
        platform.start()
        url = f"http://127.0.0.1:{platform.ports['api']}/"
        metrics_url = platform.serve_metrics()
        banner = [f"board  {url} (sign in: {platform.data / 'demo-logins.yaml'})", f"API    {url}docs",
                  f"logs   {platform.data / 'logs'}"]
        if plan.vitals:
            banner.append(f"nurse  http://127.0.0.1:{platform.ports['nurse_page']}/ (the visit kit's page; PIN "
                          f"'nurse-pin' in demo-logins.yaml); care view {url}board/care.html as dr-sato")
        if platform.fleet.enabled:
            banner.append(f"fleet  {url}board/fleet.html (map: {plan.scooters} e-scooters + {plan.slow} walking-speed "
                          f"vehicles on MQTT, a partner's feed through GBFS 2.3); GBFS 3.0 out "
                          f"{url}public/fleet/gbfs/gbfs.json")
        if metrics_url:
            banner.append(f"metrics {metrics_url} (the status line's figures and service restarts)")
        banner.append(f"{plan.modbus_meters} Modbus + {plan.sunspec_meters} SunSpec + {plan.opcua_meters} OPC UA "
                      f"meters, polled every {plan.poll_s}s. Ctrl-C stops everything.")
        print("\n".join(f"hinode: {line}" for line in banner), flush=True)
        interactive = sys.stdout.isatty()
        while not stopping:
            line = platform.status()
            print(("\r" + line.ljust(120)) if interactive else line, end="" if interactive else "\n", flush=True)
            for _ in range(20):
                if stopping:
                    break
                platform.supervisor.tick()
                time.sleep(0.1)
        return 0
    except ServiceGaveUp as exc:
        print(f"\nhinode: {exc}", file=sys.stderr, flush=True)
        return 1
    except services.ServiceError as exc:
        print(f"hinode: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nhinode: stopping ...", flush=True)
        platform.stop()
        print("hinode: stopped; data kept in", platform.data, flush=True)
