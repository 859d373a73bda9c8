"""``python -m cloud``: check-config, and serve/ingest as real processes end to end
(MQTT telemetry -> in-process ingest -> InfluxDB -> API), stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract, services

pytestmark = pytest.mark.timeout(60)
SECRETS = ("mqtt-secret-xyz", "influx-secret-xyz")
# The ingest logs its shared subscription once the broker has it.
INGEST_SUBSCRIPTION = contract.shared("hinode-ingest", contract.TELEMETRY_FILTER)


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloud", *args], capture_output=True, text=True, timeout=timeout)


def test_check_config_accepts_a_good_file(tmp_path):
    good = tmp_path / "cloud.yaml"
    good.write_text("mqtt: {host: broker.local, port: 8883}\ninflux: {url: 'http://db:8086', database: plant}\n")
    result = run_cli("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "broker.local:8883" in result.stdout


@pytest.mark.parametrize("text, expected", [
    ("mqtt: {port: seventy}\n", "mqtt.port: Input should be a valid integer"),
    ("api: {offline_after_s: 0}\n", "api.offline_after_s"),
    ("influx: {urll: 'http://x'}\n", "influx.urll: Extra inputs are not permitted"),
    ("mqtt: [unclosed\n", "not valid YAML"),
])
def test_check_config_refuses_a_bad_file_with_the_loader_message(tmp_path, text, expected):
    bad = tmp_path / "cloud.yaml"
    bad.write_text(text)
    result = run_cli("check-config", str(bad))
    assert result.returncode != 0
    assert str(bad) in result.stderr and expected in result.stderr


def test_check_config_on_a_missing_file(tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode != 0 and "cannot read" in result.stderr


def test_bad_command_line_override_is_a_clear_error():
    result = run_cli("serve", "--port", "70000", "--no-ingest")
    assert result.returncode != 0 and "api.port" in result.stderr


def secret_config(tmp_path, broker_port: int) -> str:
    path = tmp_path / "cloud.yaml"
    path.write_text(f"""
mqtt: {{port: {broker_port}, username: ingest, password: {SECRETS[0]}, client_id: cli-test-ingest}}
influx: {{username: writer, password: {SECRETS[1]}}}
ingest: {{batch_max_ms: 20, metrics_listen: "127.0.0.1:0"}}
api: {{offline_after_s: 30}}
""")
    return str(path)


def publish(port: int, site: str, agent: str, seqs: range, power: float) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    now = int(time.time() * 1000)
    status = contract.AgentStatus(site=site, agent=agent, state="online", ts=now,
                                  devices=[contract.DeviceState(device="pm-1", kind="meter", online=True)])
    infos = [client.publish(contract.status_topic(site, agent), contract.encode(status), qos=1, retain=True)]
    for i, seq in enumerate(seqs):
        envelope = contract.TelemetryEnvelope(
            site=site, agent=agent, device="pm-1", kind="meter", profile="hinode-sim-meter", seq=seq,
            readings=[contract.Reading(ts=now - (len(seqs) - i) * 100, metric="power_total", value=power + i, unit="W"),
                      contract.Reading(ts=now - (len(seqs) - i) * 100, metric="voltage_l1", value=230.5, unit="V")])
        infos.append(client.publish(contract.telemetry_topic(site, agent), contract.encode(envelope), qos=1))
    for info in infos:
        info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def poll(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return last


class CloudProcess:
    """``python -m cloud ...`` with its log (stderr) collected line by line in the background."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "cloud", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        assert poll(lambda: text in self.log, timeout), f"{text!r} never logged:\n{self.log[-2000:]}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop on SIGTERM within 20 s:\n{self.log[-2000:]}")
        self._reader.join(5)
        return self.proc.returncode


def test_serve_runs_ingest_api_and_board_end_to_end(tmp_path, broker, influx):
    port = services.free_port()
    cloud = CloudProcess("serve", "--config", secret_config(tmp_path, broker.port), "--port", str(port),
                         "--influx-url", influx.url, "--mqtt-host", "127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    try:
        assert poll(lambda: httpx.get(f"{base}/readyz").status_code == 200), "API never became ready"
        cloud.wait_for_log("subscribed to " + INGEST_SUBSCRIPTION)  # from now on nothing published gets lost
        # seq 1..3 and 5..6: envelope 4 never sent
        publish(broker.port, "plant-a", "edge-1", range(1, 4), 1000.0)
        publish(broker.port, "plant-a", "edge-1", range(5, 7), 2000.0)

        def latest():
            devices = httpx.get(f"{base}/api/latest", params={"site": "plant-a"}).json()["devices"]
            return devices if devices and devices[0]["values"].get("power_total") == 2001.0 else None

        (pm1,) = poll(latest)
        assert pm1["values"] == {"power_total": 2001.0, "voltage_l1": 230.5}

        device = poll(lambda: [d for d in httpx.get(f"{base}/api/devices").json()["devices"] if d["online"]])[0]
        assert (device["device"], device["online"], device["completeness"]["expected"],
                device["completeness"]["missing"]) == ("pm-1", True, 6, 1)
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and 'src="/board/board.js"' in page.text
        assert httpx.get(f"{base}/board/board.js").status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        assert "hinode_ingest_" in metrics and "hinode_api_requests_total" in metrics
        assert not any(secret in metrics for secret in SECRETS)
    finally:
        code = cloud.stop()
    assert code == 0, cloud.log[-2000:]
    assert "serving on" in cloud.log and "stopped" in cloud.log
    assert not any(secret in cloud.log for secret in SECRETS)


def test_ingest_command_stores_telemetry_and_stops_on_sigterm(tmp_path, broker, influx):
    cloud = CloudProcess("ingest", "--config", secret_config(tmp_path, broker.port), "--influx-url", influx.url,
                         "--database", "other_db")
    try:
        cloud.wait_for_log("subscribed to " + INGEST_SUBSCRIPTION)
        publish(broker.port, "plant-b", "edge-9", range(1, 3), 500.0)

        def stored():
            result = influx.query('SELECT count("seq") FROM "meter"', db="other_db")["results"][0]
            return result.get("series")

        assert poll(stored), "ingest never wrote to the --database given on the command line"
    finally:
        code = cloud.stop()
    assert code == 0, cloud.log[-2000:]
    assert "ingest stopped" in cloud.log
    assert not any(secret in cloud.log for secret in SECRETS)
