"""One charger as the source sees it: the :class:`ChargerEvents` a version handler calls.

It keeps a :class:`ConnectorState` per connector, turns samples into the connector's batch
(README: measurands plus status, mode and the controller's target), and keeps the open
sessions in the store. Sessions are found by transaction id first, so a StopTransaction
or MeterValues that arrives late (after a reconnect or an agent restart) lands on the
right session with its own timestamps.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from edge_agent.sources.base import DeviceBatch, SourceContext, now_ms, reading
from edge_agent.sources.ocpp import measurands
from edge_agent.sources.ocpp.config import ChargerConfig
from edge_agent.sources.ocpp.model import (BootInfo, ChargerLink, ConnectorState, Sample, TransactionStart,
                                           TransactionStop)
from edge_agent.sources.ocpp.sessions import OpenSession, SessionRecord, SessionStore
from hinode.contract import SESSION_DEVICE_SUFFIX, DeviceKind

SESSION_PROFILE = "ocpp-session"
ABANDONED_REASON = "Other"      # OCPP's reason for a session closed without its StopTransaction
STATE_REFRESH_S = 300.0         # a connector's unchanged state is repeated this often (boards look back)


@dataclass(slots=True)
class Target:
    """What the controller (or a command) last allowed a connector."""

    current_a: float
    phases: int
    decision: str = ""


def profile_name(version: str) -> str:
    return "ocpp-" + version.removeprefix("ocpp")


def session_batch(record: SessionRecord) -> DeviceBatch:
    ts = record.stop_ms
    values = [("session_id", record.transaction_id, ""), ("start_ts", record.start_ms, "ms"),
              ("stop_ts", record.stop_ms, "ms"), ("duration", record.duration_s, "s"),
              ("energy", record.energy_kwh, "kWh"), ("peak_power", record.peak_w, "W"),
              ("pv_energy", record.pv_kwh, "kWh"), ("pv_share", round(record.pv_share, 4), ""),
              ("stop_reason", record.stop_reason, "")]
    return DeviceBatch(device=record.charger + SESSION_DEVICE_SUFFIX, kind=DeviceKind.CHARGING_SESSION,
                       profile=SESSION_PROFILE, readings=[reading(ts, m, v, u) for m, v, u in values],
                       meta={"station": record.charger, "evse": str(record.connector), "id_tag": record.id_tag})


class Charger:
    def __init__(self, charger_id: str, config: ChargerConfig, version: str, *, context: SourceContext,
                 store: SessionStore, emit: Callable[[DeviceBatch], None], accepted: bool,
                 authorize_unknown_tags: bool, measurand_list: list[str], on_link: Callable[["Charger"], None]):
        self.id = charger_id
        self.config = config
        self.version = version
        self.context = context
        self.store = store
        self.emit = emit
        self.accepted = accepted
        self.authorize_unknown_tags = authorize_unknown_tags
        self.measurand_list = measurand_list
        self.on_link = on_link
        self.link: ChargerLink | None = None
        self.accept_data_transfer = False       # DataTransfer policy the 1.6 handler reads
        self.boot: BootInfo | None = None
        self.connectors: dict[int, ConnectorState] = {}
        self.targets: dict[int, Target] = {}
        self._state_sent: dict[int, tuple[tuple, float]] = {}    # connector -> (state values, when sent)
        saved = store.settings(charger_id)
        self.mode = saved.get("mode", config.mode)
        self.max_current_a = float(saved["max_current_a"]) if "max_current_a" in saved else config.max_current_a
        # per-connector overrides of the charger's mode and maximum current ("mode.2", "max_current_a.2")
        self.connector_modes = {int(k.split(".")[1]): v for k, v in saved.items() if k.startswith("mode.")}
        self.connector_max_a = {int(k.split(".")[1]): float(v) for k, v in saved.items()
                                if k.startswith("max_current_a.")}

    @property
    def profile(self) -> str:
        return profile_name(self.version)

    def connector(self, connector: int) -> ConnectorState:
        if connector not in self.connectors:
            self.connectors[connector] = ConnectorState(charger=self.id, connector=connector)
        return self.connectors[connector]

    # ------------------------------------------------------------ batches

    def connector_batch(self, connector: int, ts: int, readings: list | None = None) -> DeviceBatch:
        """A connector's readings plus its state (status, mode, target, decision): the state only when
        it changed or every STATE_REFRESH_S, so a MeterValues every 10 s does not repeat it each time."""
        state = self.connector(connector)
        out = list(readings or [])
        session = self._open_session(connector, state.transaction_id)
        if session is not None and session.last_meter_wh is not None:
            out.append(reading(ts, "session_energy",
                               round(max(0.0, session.last_meter_wh - session.meter_start_wh) / 1000.0, 6), "kWh"))
        shown = [("status", state.status, "")]
        if state.error_code and state.error_code != "NoError":
            shown.append(("error_code", state.error_code, ""))
        shown.append(("mode", self.mode_of(connector), ""))
        target = self.targets.get(connector)
        if target is not None:
            shown += [("target_current", target.current_a, "A"), ("target_phases", target.phases, ""),
                      ("decision", target.decision, "")]
        key = tuple(value for _, value, _ in shown)
        last_key, last_at = self._state_sent.get(connector, (None, 0.0))
        now = time.monotonic()
        if key != last_key or now - last_at >= STATE_REFRESH_S or not readings:
            out += [reading(ts, metric, value, unit) for metric, value, unit in shown]
            self._state_sent[connector] = (key, now)
        return DeviceBatch(device=self.id, kind=DeviceKind.CHARGER, profile=self.profile, readings=out,
                           meta={"station": self.id, "evse": str(connector)})

    def _open_session(self, connector: int, transaction_id: str | None) -> OpenSession | None:
        if transaction_id:
            session = self.store.get(transaction_id)
            if session is not None:
                return session
        return self.store.on_connector(self.id, connector)

    # ------------------------------------------------------------ ChargerEvents

    def _alive(self) -> None:
        """Any message of an accepted charger: it is online (a reconnect need not start with a boot)."""
        if not self.context.devices[self.id].online:
            self.context.device_up(self.id)
            for session in self.store.open_sessions(self.id):
                state = self.connector(session.connector)
                state.transaction_id, state.id_tag = session.transaction_id, session.id_tag

    def on_boot(self, info: BootInfo) -> None:
        self.boot = info
        if self.accepted:
            self._alive()

    def on_status(self, connector: int, status: str, error_code: str, ts_ms: int) -> None:
        if not self.accepted:
            return
        self._alive()
        state = self.connector(connector)
        state.status, state.error_code, state.updated_ms = status, error_code, ts_ms
        self.emit(self.connector_batch(connector, ts_ms))

    def on_samples(self, connector: int, transaction_id: str | None, samples: list[Sample]) -> None:
        if not self.accepted or not samples:
            return
        self._alive()
        session = self._open_session(connector, transaction_id) if transaction_id or connector else None
        if session is not None and connector == 0:
            connector = session.connector
        by_ts: dict[int, list[Sample]] = defaultdict(list)
        for sample in samples:
            by_ts[sample.ts_ms].append(sample)
        for ts in sorted(by_ts):
            group = by_ts[ts]
            self._update_state(connector, ts, group)
            if session is not None:
                self.store.sample(session.transaction_id, ts, measurands.energy_wh(group), measurands.power_w(group))
        newest = max(by_ts)
        self.emit(self.connector_batch(connector, newest, measurands.to_readings(samples)))

    def _update_state(self, connector: int, ts: int, samples: list[Sample]) -> None:
        state = self.connector(connector)
        if ts < state.updated_ms and state.updated_ms:
            return      # a late message: the state already has newer values
        state.updated_ms = ts
        power = measurands.power_w(samples)
        if power is not None:
            state.power_w = power
        energy = measurands.energy_wh(samples)
        if energy is not None:
            state.energy_wh = energy
        currents = {s.phase: s.value for s in samples if s.measurand == "Current.Import"}
        phased = [currents[p] for p in ("L1", "L2", "L3") if p in currents]
        if phased:
            state.current_a = phased
            state.phases_in_use = sum(1 for c in phased if c > 1.0)
        elif "" in currents:
            state.current_a = [currents[""]]
        for s in samples:
            if s.measurand == "Current.Offered" and not s.phase:
                state.offered_a = s.value
            elif s.measurand == "SoC":
                state.soc = s.value

    def authorize(self, id_tag: str) -> bool:
        return self.authorize_unknown_tags or self.store.has_tag(id_tag)

    def next_transaction_id(self) -> int:
        return self.store.next_transaction_id()

    def on_transaction_started(self, start: TransactionStart) -> None:
        if not self.accepted:
            return
        self._alive()
        self._close_abandoned(start)
        if self.store.get(start.transaction_id) is None:
            self.store.start(OpenSession(
                transaction_id=start.transaction_id, charger=self.id, connector=start.connector, id_tag=start.id_tag,
                start_ms=start.ts_ms, meter_start_wh=start.meter_start_wh, last_meter_wh=start.meter_start_wh,
                last_ms=start.ts_ms))
        state = self.connector(start.connector)
        state.transaction_id, state.id_tag = start.transaction_id, start.id_tag
        self.context.log.info("%s: charger %s connector %d: session %s started (tag %s)", self.context.source_name,
                              self.id, start.connector, start.transaction_id, start.id_tag)

    def _close_abandoned(self, start: TransactionStart) -> None:
        """A connector runs one session: an older one still open there lost its stop (a charger
        that was reset, say). Close it at its last meter value rather than keep it open forever."""
        for session in self.store.open_sessions(self.id):
            if (session.connector == start.connector and session.transaction_id != start.transaction_id
                    and session.start_ms <= start.ts_ms):
                self.context.count_error(self.id, "session_abandoned")
                record = self.store.stop(session.transaction_id, session.last_ms, None, ABANDONED_REASON)
                if record is not None:
                    self.emit(session_batch(record))

    def on_transaction_ended(self, stop: TransactionStop) -> None:
        if not self.accepted:
            return
        self._alive()
        record = self.store.stop(stop.transaction_id, stop.ts_ms, stop.meter_stop_wh, stop.reason)
        if record is None:
            self.context.count_error(self.id, "unknown_transaction")
            self.context.log.warning("%s: charger %s stopped transaction %s, which is not open here",
                                     self.context.source_name, self.id, stop.transaction_id)
            return
        state = self.connector(record.connector)
        if state.transaction_id == stop.transaction_id:
            state.transaction_id, state.id_tag = None, ""
        self.context.log.info("%s: charger %s: session %s ended, %.3f kWh", self.context.source_name, self.id,
                              record.transaction_id, record.energy_kwh)
        self.emit(session_batch(record))

    def on_protocol_error(self, code: str, detail: str) -> None:
        self.context.count_error(self.id, f"ocpp_{code}")
        self.context.log.warning("%s: charger %s: answered CALLERROR %s: %s", self.context.source_name, self.id,
                                 code, detail[:200])

    def on_ready(self, link: ChargerLink) -> None:
        self.link = link
        if not self.accepted:
            return
        self._alive()
        self.context.describe(self.id, self.profile, measurands.catalog(self.measurand_list))
        note = getattr(link, "note_transaction", None)
        if note is not None:
            for session in self.store.open_sessions(self.id):
                note(session.transaction_id, session.connector)
        self.on_link(self)

    def on_disconnect(self, reason: str) -> None:
        self.link = None
        if self.accepted and self.id in self.context.devices:
            self.context.device_down(self.id, reason)

    # ------------------------------------------------------------ settings that persist

    def mode_of(self, connector: int) -> str:
        return self.connector_modes.get(connector, self.mode)

    def max_current_of(self, connector: int) -> float:
        return min(self.connector_max_a.get(connector, self.max_current_a), self.config.max_current_a)

    def set_mode(self, mode: str, connector: int | None = None) -> None:
        """The charger's mode (clearing connector overrides), or one connector's."""
        if connector:
            self.connector_modes[connector] = mode
            self.store.set_setting(self.id, f"mode.{connector}", mode)
            return
        self.mode = mode
        self.store.set_setting(self.id, "mode", mode)
        for other in list(self.connector_modes):
            self.store.set_setting(self.id, f"mode.{other}", None)
        self.connector_modes.clear()

    def set_max_current(self, amps: float, connector: int | None = None) -> None:
        if connector:
            self.connector_max_a[connector] = float(amps)
            self.store.set_setting(self.id, f"max_current_a.{connector}", repr(float(amps)))
            return
        self.max_current_a = float(amps)
        self.store.set_setting(self.id, "max_current_a", repr(float(amps)))

    def emit_state(self, connector: int) -> None:
        self.emit(self.connector_batch(connector, now_ms()))
