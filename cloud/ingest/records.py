"""Line protocol for what agents send besides telemetry: metric catalogs and command results.

Measurements (the README's InfluxDB section lists them with the rest of the schema):

* ``hinode_catalog`` — one point per (device, metric) each time an agent sends its catalog
  (every connection, every change, every few hours). Tags ``site, agent, device, kind,
  profile, metric``; fields ``unit`` (string), ``counter`` (bool), ``rollover`` (float,
  0 = none), ``writable`` (bool). The newest point of a (site, device, metric) is what it
  measures now: ``SELECT last("unit") ... GROUP BY "site","device","metric"``.
* ``hinode_command_result`` — one point per status change of a command. Tags ``site,
  agent, status``; fields ``id``, ``message`` (strings), ``data`` (JSON text of the
  result's data, e.g. the value read back after a write).
"""

from __future__ import annotations

import json

from cloud.lineproto import escape_key, escape_measurement, format_number, format_string
from hinode.contract import AgentCatalog, CommandResult, DeviceCatalog

CATALOG_MEASUREMENT = "hinode_catalog"
COMMAND_MEASUREMENT = "hinode_command"
RESULT_MEASUREMENT = "hinode_command_result"


def _tags(values: dict[str, str]) -> str:
    return "".join(f",{key}={escape_key(value)}" for key, value in sorted(values.items()) if value)


def catalog_lines(catalog: AgentCatalog, devices: list[DeviceCatalog]) -> list[str]:
    """Lines for ``devices`` (a subset of ``catalog.devices``: personal ones go to their own database)."""
    measurement = escape_measurement(CATALOG_MEASUREMENT)
    lines = []
    for device in devices:
        for info in device.metrics:
            tags = _tags({"site": catalog.site, "agent": catalog.agent, "device": device.device,
                          "kind": str(device.kind), "profile": device.profile, "metric": info.metric})
            rollover = format_number(info.rollover or 0.0) or "0.0"
            fields = (f"unit={format_string(info.unit)},counter={'true' if info.counter else 'false'},"
                      f"rollover={rollover},writable={'true' if info.writable else 'false'}")
            lines.append(f"{measurement}{tags} {fields} {catalog.ts}")
    return lines


def result_line(result: CommandResult) -> str:
    tags = _tags({"site": result.site, "agent": result.agent, "status": str(result.status)})
    fields = (f"id={format_string(result.id)},message={format_string(result.message)},"
              f"data={format_string(json.dumps(result.data, separators=(',', ':'), sort_keys=True))}")
    return f"{escape_measurement(RESULT_MEASUREMENT)}{tags} {fields} {result.ts}"
