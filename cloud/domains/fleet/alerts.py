"""Open alerts for the operator (``GET /api/fleet/alerts``), from the live tracker; pure, no I/O.

An alert is a vehicle's condition that needs someone now: its battery low (at or below ``battery_low_pct``
until it is back at ``battery_charged_pct``, like the battery_low event), no fix for ``comms_lost_s``
(offline), tipped over, not moved for ``idle_too_long_s``, or an open zone violation. Each is listed while it lasts, oldest first, so the list is what is wrong right now,
not a history (that is ``GET /api/fleet/events``).
"""

from __future__ import annotations

BATTERY_LOW = "battery_low"
COMMS_LOST = "comms_lost"
TIPPED_OVER = "tipped_over"
IDLE_TOO_LONG = "idle_too_long"
VIOLATION = "violation"
ALERT_KINDS = (BATTERY_LOW, COMMS_LOST, TIPPED_OVER, IDLE_TOO_LONG, VIOLATION)


def _vehicle(view) -> dict:
    return {"fleet": view.fleet, "vehicle": view.vehicle, "vehicle_type": view.vehicle_type, "lat": view.lat,
            "lon": view.lon, "battery_pct": view.battery_pct, "state": view.state, "last_seen_ms": view.ts_ms}


def open_alerts(views, violations, battery_low_pct: float) -> list[dict]:
    """``views``: VehicleView; ``violations``: open Violation (events.py); each alert a dict with ``kind``."""
    alerts: list[dict] = []
    for view in views:
        base = _vehicle(view)
        if view.battery_low:
            alerts.append({**base, "kind": BATTERY_LOW, "since_ms": view.ts_ms,
                           "detail": f"battery {view.battery_pct:.0f} % (low at or below {battery_low_pct:.0f} %)"})
        if not view.online:
            alerts.append({**base, "kind": COMMS_LOST, "since_ms": view.ts_ms, "detail": "no fix since last_seen_ms"})
        if view.tipped_over:
            alerts.append({**base, "kind": TIPPED_OVER, "since_ms": view.ts_ms, "detail": "tipped over"})
        if view.idle_too_long:
            alerts.append({**base, "kind": IDLE_TOO_LONG, "since_ms": view.idle_since_ms,
                           "detail": "not moved since since_ms"})
    by_vehicle = {(v.fleet, v.vehicle): v for v in views}
    for violation in violations:
        view = by_vehicle.get((violation.fleet, violation.vehicle))
        base = _vehicle(view) if view is not None else {"fleet": violation.fleet, "vehicle": violation.vehicle,
                                                        "vehicle_type": violation.vehicle_type}
        alerts.append({**base, "kind": VIOLATION, "since_ms": violation.start_ms,
                       "violation_id": violation.violation_id, "violation_kind": str(violation.kind),
                       "zone": violation.zone_id, "detail": f"{violation.kind} in zone {violation.zone_id}"})
    alerts.sort(key=lambda a: (a["since_ms"] or 0, a["fleet"], a["vehicle"], a["kind"]))
    return alerts
