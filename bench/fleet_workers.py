"""The fleet worker under test in ``bench/fleet_path.py`` (helper, not a benchmark).

``start(mode, workdir, broker, influx, zones_file, database)`` -> a worker with ``name``, ``pid``,
``wait_ready(timeout)``, ``observe(window)``, ``finish(window, settle_s)`` -> figures, ``stop()``.

- ``ServeWorker`` (``serve``): ``python -m cloud serve --no-ingest`` with ``domains.fleet`` pointing at
  the bench's zones: the real worker in the API process; fixes handled from its /metrics.
- ``HarnessWorker`` (``worker``): ``bench/fleet_harness.py``, the same FleetWorker without the API;
  fixes handled from its counters, sampled by a thread (they are read even while its loop is busy).
- ``EngineWorker`` (``engine``): ``bench/fleet_standin.py`` (MQTT -> decode -> FleetTracker, nothing else).

For the first two, zone events are observed where an operator sees them (``InfluxObserved``): a thread
asks InfluxDB every 100 ms for the ``fleet_event`` zone events of the last seconds (following the newest
one seen when the worker falls behind); the first time an event id shows up, now - its time (= the
fix's ``ts``) is its latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from common import REPO, stop_process

from hinode.services import free_port

PROBE_FLEET = "bench-probe"
ZONE_EVENT_FILTER = "(\"event_type\" = 'zone_enter' OR \"event_type\" = 'zone_exit')"


def has_real_worker() -> bool:
    try:
        from cloud.domains.fleet import DOMAIN
    except Exception:   # not written yet, or broken while it is being written
        return False
    return DOMAIN.lifespan is not None


def start(mode: str, workdir: Path, broker, influx, zones_file: Path, database: str):
    if mode == "auto":
        mode = "serve" if has_real_worker() else "engine"
    if mode == "engine":
        worker = EngineWorker(workdir, broker, zones_file)
    else:
        worker = (ServeWorker if mode == "serve" else HarnessWorker)(workdir, broker, influx, zones_file, database)
    worker.start()
    return worker


def start_mqtt_baseline(workdir: Path, broker) -> "EngineWorker":
    """paho on a share group of its own, receiving and acknowledging every fix and nothing else."""
    baseline = EngineWorker(workdir, broker, Path("-"), file_name="baseline", count_only=True)
    baseline.start()
    return baseline


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _in_window(window: tuple[float, float], t: float) -> bool:
    return window[0] <= t < window[1]


class EngineWorker:
    def __init__(self, workdir: Path, broker, zones_file: Path, file_name: str = "standin", count_only: bool = False):
        self.workdir, self.broker, self.zones_file = workdir, broker, zones_file
        self.file_name, self.count_only = file_name, count_only
        self.proc: subprocess.Popen | None = None
        self.name = "engine stand-in (bench/fleet_standin.py)"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> None:
        self.proc = _spawn([sys.executable, str(REPO / "bench" / "fleet_standin.py"), "--port", str(self.broker.port),
                            "--zones-file", str(self.zones_file), "--out", str(self.workdir), "--name", self.file_name,
                            *(["--count-only"] if self.count_only else [])],
                           self.workdir / f"{self.file_name}.log")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.workdir / f"{self.file_name}.ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.file_name} did not subscribe; see {self.workdir}/{self.file_name}.log")
            time.sleep(0.05)

    def observe(self, window) -> None:
        pass

    def finish(self, window, settle_s: float) -> dict:
        time.sleep(settle_s)
        stop_process(self.proc)
        data = json.loads((self.workdir / f"{self.file_name}.json").read_text())
        self.name = f"engine stand-in (bench/fleet_standin.py): {data['tracker']}; no InfluxDB writes, no API"
        handled = sum(n for second, n in data["per_second"].items() if _in_window(window, int(second) + 0.5))
        return {"handled": handled, "events": data["events"], "events_scope": "whole run",
                "latency_source": "tracker return in the stand-in",
                "latencies_ms": [ms for t, ms in data["latencies"] if _in_window(window, t - ms / 1000)],
                "notes": [f"the stand-in refused {data['refused']} payloads"] if data["refused"] else []}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class InfluxObserved:
    """Zone events observed in InfluxDB ``fleet_event``, as an operator would first see them."""

    name = ""
    latency_source = "first visible in InfluxDB fleet_event"

    def __init__(self, workdir: Path, broker, influx, zones_file: Path, database: str):
        self.workdir, self.broker, self.influx = workdir, broker, influx
        self.zones_file, self.database = zones_file, database
        self.proc: subprocess.Popen | None = None
        self.seen: dict[str, tuple[float, int]] = {}     # event id -> (first seen, its ts ms)
        self.newest_ms = time.time() * 1000
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll_errors = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _query(self, q: str) -> list[list]:
        data = urllib.parse.urlencode({"q": q, "db": self.database, "epoch": "ms"}).encode()
        with urllib.request.urlopen(f"{self.influx.url}/query", data=data, timeout=5) as resp:
            body = json.loads(resp.read())
        series = body["results"][0].get("series") or []
        return [row for s in series for row in s["values"]]

    def _poll(self) -> None:
        """Every 100 ms the zone events of the last few seconds; when the worker falls behind, the look-back
        follows the newest event seen (5 s before it), so late events are still found."""
        newest_ms = self.newest_ms = time.time() * 1000
        while not self._stop.wait(0.1):
            since_ms = int(min(time.time() * 1000, newest_ms) - 5000)
            try:
                rows = self._query(f'SELECT "event_id" FROM "fleet_event" WHERE time > {since_ms}ms '
                                   f'AND {ZONE_EVENT_FILTER}')
            except (OSError, ValueError, KeyError):
                self.poll_errors += 1
                continue
            now = time.time()
            for ts, event_id in rows:
                self.seen.setdefault(event_id, (now, ts))
                newest_ms = max(newest_ms, ts)
            self.newest_ms = newest_ms

    def observe(self, window) -> None:
        self._thread = threading.Thread(target=self._poll, name="fleet-event-poller", daemon=True)
        self._thread.start()

    def handled(self, window) -> int | None:
        return None

    def worker_notes(self) -> list[str]:
        return []

    def finish(self, window, settle_s: float) -> dict:
        behind_s = time.time() - self.newest_ms / 1000
        time.sleep(settle_s)
        self._stop.set()
        self._thread.join(10)
        lo, hi = int(window[0] * 1000), int(window[1] * 1000)
        all_events = self._query(f'SELECT "event_id", "event_type" FROM "fleet_event" '
                                 f'WHERE time >= {lo}ms AND time < {hi}ms')
        events: dict[str, int] = {}
        for _ts, _id, event_type in all_events:
            events[event_type] = events.get(event_type, 0) + 1
        zone_ids = {event_id for _ts, event_id, event_type in all_events if event_type in ("zone_enter", "zone_exit")}
        latencies = [1000 * seen - ts for event_id, (seen, ts) in self.seen.items() if event_id in zone_ids]
        notes = [f"InfluxDB polled every 100 ms (adds up to ~100 ms + a query); {self.poll_errors} polls failed",
                 f"when the publishers stopped, the newest zone event in InfluxDB was {behind_s:.1f} s old"]
        late = len(zone_ids - self.seen.keys())
        if late:
            notes.append(f"{late} zone events of the window are in InfluxDB but the poller missed them")
        return {"handled": self.handled(window), "events": events, "events_scope": "fixes in the window",
                "latencies_ms": latencies, "notes": notes + self.worker_notes(),
                "latency_source": self.latency_source}

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None:
            stop_process(self.proc)


class HarnessWorker(InfluxObserved):
    name = "bench/fleet_harness.py: cloud/domains/fleet FleetWorker alone (events to InfluxDB, no API)"

    def start(self) -> None:
        self.proc = _spawn([sys.executable, str(REPO / "bench" / "fleet_harness.py"), "--port", str(self.broker.port),
                            "--influx-url", self.influx.url, "--database", self.database,
                            "--zones-file", str(self.zones_file), "--out", str(self.workdir)],
                           self.workdir / "harness.log")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self.workdir / "harness.ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fleet worker harness did not subscribe; see {self.workdir}/harness.log")
            time.sleep(0.05)

    def _samples(self) -> list[dict]:
        lines = (self.workdir / "harness.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def handled(self, window) -> int | None:
        samples = self._samples()

        def fixes_at(t: float) -> int:
            return min(samples, key=lambda s: abs(s["t"] - t))["fixes"]
        return fixes_at(window[1]) - fixes_at(window[0]) if samples else None

    def worker_notes(self) -> list[str]:
        samples = self._samples()
        if not samples:
            return ["the harness wrote no samples"]
        last = samples[-1]
        notes = [f"worker counters at the end: fixes {last['fixes']}, messages {last['received']}, points written "
                 f"{last['written']}, points waiting {last['waiting']}"]
        if last["invalid"]:
            notes.append(f"worker refused: {last['invalid']}")
        return notes


class ServeWorker(InfluxObserved):
    name = ("python -m cloud serve --no-ingest, scheduler off (cloud/domains/fleet worker in the API, events to "
            "InfluxDB)")

    def __init__(self, *args):
        super().__init__(*args)
        self.api_port = free_port()
        self.scrapes: list[dict[str, float]] = []
        self.scrape_errors: list[str] = []
        self._scraper: threading.Thread | None = None

    def start(self) -> None:
        config = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port},
            "influx": {"url": self.influx.url, "database": self.database},
            "api": {"host": "127.0.0.1", "port": self.api_port, "auth": {"enabled": False},
                    "dead_letters": {"path": str(self.workdir / "dead-letters.db")}},
            # the other domains' periodic jobs (energy slots, vitals alerts, ...) are not the fleet path
            "scheduler": {"enabled": False},
            "domains": {"fleet": {"zones_file": str(self.zones_file), "state_dir": str(self.workdir / "fleet-state")}},
        }
        path = self.workdir / "cloud.json"
        path.write_text(json.dumps(config))
        self.proc = _spawn([sys.executable, "-m", "cloud", "serve", "--config", str(path), "--no-ingest",
                            "--log-level", "WARNING"], self.workdir / "serve.log")

    def wait_ready(self, timeout: float) -> None:
        """Until a probe vehicle's fix (outside every zone) shows in /api/fleet/vehicles: the worker is
        subscribed and processing (its /metrics may not say so)."""
        import paho.mqtt.client as mqtt

        from hinode import contract
        from hinode.mobility import vehicle_readings
        deadline = time.monotonic() + timeout
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fleet-probe", protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        seq = 0
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"cloud serve exited with {self.proc.returncode}; see {self.workdir}/serve.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cloud serve's fleet worker not up within {timeout}s; "
                                       f"see {self.workdir}/serve.log")
                seq += 1
                envelope = contract.TelemetryEnvelope(
                    site=PROBE_FLEET, agent="probe", device="probe", kind=contract.DeviceKind.VEHICLE, seq=seq,
                    meta={"fleet": PROBE_FLEET, "vehicle_type": "escooter"},
                    readings=vehicle_readings(int(time.time() * 1000), lat=36.40, lon=140.40, state="available"))
                client.publish(contract.telemetry_topic(PROBE_FLEET, "probe"), contract.encode(envelope), qos=1)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/fleet/vehicles",
                                                timeout=5) as resp:
                        if b'"probe"' in resp.read():
                            return
                except OSError:
                    pass
                time.sleep(1.0)
        finally:
            client.disconnect()
            client.loop_stop()

    def metrics(self) -> dict[str, float]:
        """The API's /metrics as {sample name with labels: value} (hinode_fleet_* only)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("hinode_fleet_"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def _scrape_at(self, moments: list[float]) -> None:
        for moment in moments:
            time.sleep(max(0.0, moment - time.time()))
            try:
                self.scrapes.append(self.metrics())
            except OSError as exc:
                self.scrapes.append({})
                self.scrape_errors.append(f"/metrics at {time.strftime('%H:%M:%S')}: {exc}")

    def observe(self, window) -> None:
        super().observe(window)
        self._scraper = threading.Thread(target=self._scrape_at, args=(list(window),), daemon=True)
        self._scraper.start()

    def handled(self, window) -> int | None:
        """Fixes fed to the tracker in the window, from /metrics (None when it did not answer then)."""
        self._scraper.join(15)
        key = "hinode_fleet_fixes_total"
        if len(self.scrapes) == 2 and all(key in s for s in self.scrapes):
            return int(self.scrapes[1][key] - self.scrapes[0][key])
        return None

    def worker_notes(self) -> list[str]:
        try:
            final = self.metrics()
        except OSError as exc:       # the API's event loop is busy with the worker's backlog
            final = {}
            self.scrape_errors.append(f"final /metrics: {exc}")
        return self._worker_notes(final) + [f"the API did not answer: {e}" for e in self.scrape_errors]

    @staticmethod
    def _worker_notes(samples: dict[str, float]) -> list[str]:
        """What the worker's own /metrics said at the end (whole run)."""
        notes = []
        if "hinode_fleet_fixes_total" in samples:
            notes.append(f"the worker fed {samples['hinode_fleet_fixes_total']:.0f} fixes to its tracker in the whole "
                         f"run (at the end + 3 s)")
        count = samples.get("hinode_fleet_event_latency_seconds_count")
        within = samples.get('hinode_fleet_event_latency_seconds_bucket{le="1.0"}')
        if count and within is not None:
            notes.append(f"the worker's own histogram (fix ts -> event made, all event types, whole run): "
                         f"{100 * within / count:.1f} % of {count:.0f} within 1 s")
        bad = {k: v for k, v in samples.items() if v and k.startswith(("hinode_fleet_invalid_total",
                                                                         "hinode_fleet_points_dropped_total"))}
        if bad:
            notes.append("worker counters: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(bad.items())))
        waiting = samples.get("hinode_fleet_points_waiting")
        if waiting:
            notes.append(f"{waiting:.0f} fleet points still waiting for InfluxDB at the end")
        return notes
