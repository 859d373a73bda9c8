"""The main command, as a user runs it: ``hinode up`` starts its own broker, InfluxDB, cloud,
simulators and agent in a data directory, prints the board URL and a status line with every
device online, stops cleanly on Ctrl-C, and a second run reuses the data and the ports."""

from __future__ import annotations

import json

import pytest

from hinode.services import free_port
from tests.e2e.up_process import DEVICE_COUNT, Up, all_online, api_seqs

pytestmark = pytest.mark.timeout(240)


def test_hinode_up_runs_the_whole_pipeline_stops_on_ctrl_c_and_reuses_its_data(tmp_path):
    data_dir, api_port = tmp_path / "data", free_port()
    first = Up(data_dir, api_port)
    try:
        first.wait_for(lambda line: f"board  http://127.0.0.1:{api_port}/" in line, "board URL", 120)
        first.wait_for(all_online, "status line with every device online", 90)
        devices = api_seqs(api_port)
        assert len(devices) == DEVICE_COUNT
    finally:
        code = first.interrupt()
    assert code == 0, "\n".join(first.lines[-30:])
    assert any("hinode: stopped; data kept in" in line for line in first.lines)
    ports = json.loads((data_dir / "ports.json").read_text())
    assert (data_dir / "logs").is_dir()

    second = Up(data_dir, api_port)
    try:
        second.wait_for(all_online, "every device online on the second run", 150)
        assert json.loads((data_dir / "ports.json").read_text()) == ports, "a second run keeps the ports"
        # seq continues across the restart, and what was queued at the stop is delivered
        second.wait_for(lambda line: all_online(line) and all_online(line)[3] == "0",
                        "no missing readings after the restart on the same data", 60)
    finally:
        code = second.interrupt()
    assert code == 0, "\n".join(second.lines[-30:])
