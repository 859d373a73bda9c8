"""Config folder for the ThingsBoard IoT Gateway peer (thingsboard-gateway 3.8.5 from PyPI).

Its best configuration for N Modbus TCP meters behind one port (unit ids 1..N): one
20-register block read per meter per poll (``"address": "0-19"``, keys ``reg_<address>``),
memory storage, QoS 1, every polled value reported (``ON_RECEIVED``), statistics, remote
shell/configuration and gRPC off, the package's default logging. The same settings as the
peer baseline in /work/shared/peers/thingsboard-gateway/ (its "block" variant), written
here from our own code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def write_gateway_config(config_dir: Path, package_dir: Path, mqtt_port: int, modbus_port: int,
                         meters: int, poll_ms: int) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    gateway = {
        "thingsboard": {
            "host": "127.0.0.1", "port": mqtt_port,
            "remoteShell": False, "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 60, "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False, "filterFile": "list.json"},
            "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60, "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": "HINODE_BENCH_TOKEN"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False, "inactivityTimeoutSeconds": 300,
                                       "inactivityCheckPeriodSeconds": 10},
            "rateLimits": "DEFAULT_TELEMETRY_RATE_LIMIT", "dpRateLimits": "DEFAULT_TELEMETRY_DP_RATE_LIMIT",
            "messagesRateLimits": "DEFAULT_MESSAGES_RATE_LIMIT",
            "deviceMessagesRateLimits": "DEFAULT_MESSAGES_RATE_LIMIT",
            "deviceRateLimits": "DEFAULT_TELEMETRY_RATE_LIMIT",
            "deviceDpRateLimits": "DEFAULT_TELEMETRY_DP_RATE_LIMIT",
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus meters", "configuration": "modbus_meters.json"}],
    }
    slaves = [{
        "host": "127.0.0.1", "port": modbus_port, "type": "tcp", "method": "socket",
        "unitId": unit, "deviceName": f"meter-{unit:02d}", "deviceType": "power-meter",
        "timeout": 3, "byteOrder": "BIG", "wordOrder": "BIG", "retries": 3,
        "retryOnEmpty": True, "retryOnInvalid": True, "pollPeriod": poll_ms,
        "connectAttemptTimeMs": 5000, "connectAttemptCount": 5, "waitAfterFailedAttemptsMs": 300000,
        "attributes": [], "attributeUpdates": [], "rpc": [],
        # one request per meter: 10 float32 = registers 0..19 in one read
        "timeseries": [{"tag": "reg_${address}", "type": "32float", "functionCode": 3, "objectsCount": 2,
                        "address": "0-19", "maxRegistersPerRequest": 20}],
    } for unit in range(1, meters + 1)]
    modbus = {"name": "Modbus meters", "logLevel": "INFO", "master": {"slaves": slaves}}
    (config_dir / "tb_gateway.json").write_text(json.dumps(gateway, indent=2))
    (config_dir / "modbus_meters.json").write_text(json.dumps(modbus, indent=2))
    shutil.copy(package_dir / "config" / "logs.json", config_dir / "logs.json")
    return config_dir
