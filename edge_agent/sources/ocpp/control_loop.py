"""The site controller's loop: read the site, call the (pure) controller, apply its targets.

Every ``controller.interval_s``: the grid and PV meters come from ``context.latest`` (other
sources of this agent poll them, in W unless the config says kW), the connectors from the chargers' states. A
target goes to a charger only when it differs from what was last applied, so a steady
site sends no SetChargingProfile at all. The PV share of each session's energy is
integrated here (share of the connector's power x the interval) into the session store.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from edge_agent.sources.base import DeviceBatch, SourceContext, now_ms, reading, wait_event
from edge_agent.sources.ocpp.charger import Charger, Target as AppliedTarget
from edge_agent.sources.ocpp.config import Config, MeterRef
from edge_agent.sources.ocpp.controller import (Circuit, Controller, ControllerSettings, DisableSettings,
                                                EnableSettings, LoadpointInput, SiteDecision, SiteInput)
from edge_agent.sources.ocpp.measurands import SITE_METRICS
from edge_agent.sources.ocpp.model import ChargerLink, Limit, RateUnit
from edge_agent.sources.ocpp.sessions import SessionStore
from hinode.contract import DeviceKind

CONNECTED_STATUSES = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}
CHARGING_MIN_W = 100.0
SITE_PROFILE = "ocpp-site"
SITE_SCOPE = "_site"


@dataclass(slots=True)
class SiteTarget:
    power_kw: float
    from_ms: int
    until_ms: int

    def active(self, at_ms: int) -> bool:
        return self.from_ms <= at_ms < self.until_ms


def phases_config(wired_phases: int, switching: str) -> str:
    """A charger wired for one phase never switches; otherwise the config's choice."""
    return "1" if wired_phases == 1 else switching


def controller_settings(config: Config) -> ControllerSettings:
    c = config.controller
    return ControllerSettings(
        enable=EnableSettings(threshold_w=c.enable.threshold_w, delay_s=c.enable.delay_s),
        disable=DisableSettings(threshold_w=c.disable.threshold_w, delay_s=c.disable.delay_s),
        site_limit_a=c.site_limit_a, site_limit_w=c.site_limit_kw * 1000.0 if c.site_limit_kw else None,
        circuits=[Circuit(name=x.name, limit_a=x.limit_a) for x in c.circuits], residual_w=c.residual_w)


class ControlLoop:
    def __init__(self, config: Config, context: SourceContext, chargers: dict[str, Charger], store: SessionStore,
                 emit: Callable[[DeviceBatch], None]):
        self.config = config
        self.settings = config.controller
        self.context = context
        self.chargers = chargers
        self.store = store
        self.emit = emit
        self.controller = Controller(controller_settings(config))
        self.applied: dict[tuple[str, int], tuple[float, int]] = {}
        self.last_decision: SiteDecision | None = None
        self._last_step_ms: int | None = None
        self._lock = asyncio.Lock()
        saved = store.settings(SITE_SCOPE)
        self.site_target = (SiteTarget(float(saved["target_kw"]), int(saved["target_from_ms"]),
                                       int(saved["target_until_ms"])) if "target_kw" in saved else None)
        context.register(config.name, DeviceKind.SITE)
        context.describe(config.name, SITE_PROFILE, SITE_METRICS)

    def set_site_target(self, target: SiteTarget | None) -> None:
        self.site_target = target
        values = ({"target_kw": repr(target.power_kw), "target_from_ms": str(target.from_ms),
                   "target_until_ms": str(target.until_ms)} if target else
                  {"target_kw": None, "target_from_ms": None, "target_until_ms": None})
        for key, value in values.items():
            self.store.set_setting(SITE_SCOPE, key, value)

    # ------------------------------------------------------------ inputs

    def _meter_w(self, ref: MeterRef, at_ms: int) -> float | None:
        entry = self.context.latest.get(ref.device, ref.metric)
        if entry is None:
            return None
        ts, value = entry
        stale_ms = max(3 * self.settings.interval_s, 30.0) * 1000
        if at_ms - ts > stale_ms or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        return float(value) * (1000.0 if ref.unit == "kW" else 1.0)

    def site_input(self, at_ms: int) -> SiteInput:
        grid_w = self._meter_w(self.settings.grid_meter, at_ms) if self.settings.grid_meter else None
        pv_values = [self._meter_w(ref, at_ms) for ref in self.settings.pv_meters]
        pv_known = [abs(v) for v in pv_values if v is not None]
        target = self.site_target if self.site_target and self.site_target.active(at_ms) else None
        return SiteInput(grid_w=grid_w,
                         pv_w=sum(pv_known) if pv_known else None,
                         site_target_w=target.power_kw * 1000.0 if target else None)

    def loadpoints(self) -> list[LoadpointInput]:
        out = []
        for charger in self.chargers.values():
            if not charger.accepted or charger.link is None:
                continue
            cfg = charger.config
            for number, state in sorted(charger.connectors.items()):
                if number == 0:
                    continue
                user_limit = charger.max_current_of(number)
                out.append(LoadpointInput(
                    key=(charger.id, number), mode=charger.mode_of(number),
                    connected=state.status in CONNECTED_STATUSES,
                    charging=state.power_w > CHARGING_MIN_W,
                    power_w=max(0.0, state.power_w), phases_active=state.phases_in_use or cfg.phases,
                    min_current_a=cfg.min_current_a, max_current_a=cfg.max_current_a,
                    phases_config=phases_config(cfg.phases, cfg.phase_switching),
                    phase_switch_supported=charger.link.capabilities.phase_switch, circuit=cfg.circuit,
                    priority=cfg.priority, user_limit_a=user_limit if user_limit < cfg.max_current_a else None))
        return out

    # ------------------------------------------------------------ one step

    @property
    def stepping(self) -> bool:
        return self._lock.locked()

    async def step(self, at_ms: int | None = None) -> SiteDecision:
        async with self._lock:      # the interval loop and a command's step never interleave
            return await self._step(now_ms() if at_ms is None else at_ms)

    async def _step(self, at_ms: int) -> SiteDecision:
        site = self.site_input(at_ms)
        loadpoints = self.loadpoints()
        decision = self.controller.step(at_ms / 1000.0, site, loadpoints)
        self.last_decision = decision
        self._integrate_pv(at_ms, loadpoints)
        await self._apply(decision, at_ms)
        self._emit_site(decision, site, at_ms)
        return decision

    def _integrate_pv(self, at_ms: int, loadpoints: list[LoadpointInput]) -> None:
        previous, self._last_step_ms = self._last_step_ms, at_ms
        if previous is None:
            return
        interval_s = min((at_ms - previous) / 1000.0, 2 * self.settings.interval_s)
        shares = self.controller.pv_share()
        for lp in loadpoints:
            share = shares.get(lp.key, 0.0)
            if share > 0 and lp.power_w > 0:
                self.store.add_pv_energy(lp.key[0], lp.key[1], share * lp.power_w * interval_s / 3_600_000.0)

    async def _apply(self, decision: SiteDecision, at_ms: int) -> None:
        sends = []
        for (charger_id, number), target in decision.targets.items():
            charger = self.chargers.get(charger_id)
            if charger is None:
                continue
            current = target.current_a if target.enabled else 0.0
            previous = charger.targets.get(number)
            charger.targets[number] = AppliedTarget(current, target.phases, target.reason)
            if self.applied.get((charger_id, number)) != (current, target.phases) and charger.link is not None:
                sends.append(self._send(charger.id, charger.link, number, current, target.phases))
            if previous is None or (previous.current_a, previous.phases, previous.decision) != (
                    current, target.phases, target.reason):
                charger.emit(charger.connector_batch(number, at_ms))
        # in parallel: a charger that does not answer must not hold up the others' targets
        await asyncio.gather(*sends)

    async def _send(self, charger_id: str, link: ChargerLink, number: int, current: float, phases: int) -> None:
        try:
            status = await link.set_limit(number, Limit(current, RateUnit.AMPS, phases))
        except (TimeoutError, ConnectionError) as exc:
            self.context.count_error(charger_id, "set_limit_failed")
            self.context.log.warning("%s: charger %s connector %d: limit not applied: %r",
                                     self.context.source_name, charger_id, number, exc)
            return
        if status == "Accepted":
            self.applied[(charger_id, number)] = (current, phases)
        else:
            self.context.count_error(charger_id, "set_limit_rejected")

    def _emit_site(self, decision: SiteDecision, site: SiteInput, at_ms: int) -> None:
        ev_w = decision.ev_power_w
        values = [("ev_power", round(ev_w, 1), "W"), ("surplus", round(decision.surplus_w, 1), "W"),
                  ("decision", decision.reason, "")]
        if decision.grid_w is not None:
            values.append(("grid_power", round(decision.grid_w, 1), "W"))
        if site.pv_w is not None:
            values.append(("pv_power", round(site.pv_w, 1), "W"))
            if decision.grid_w is not None:
                values.append(("load_power", round(decision.grid_w + site.pv_w - ev_w, 1), "W"))
        if site.site_target_w is not None:
            values.append(("site_target", round(site.site_target_w, 1), "W"))
        self.emit(DeviceBatch(device=self.config.name, kind=DeviceKind.SITE, profile=SITE_PROFILE,
                              readings=[reading(at_ms, m, v, u) for m, v, u in values]))

    def forget(self, charger_id: str) -> None:
        """A charger reconnected: what it had applied is unknown, send the next target again."""
        for key in [k for k in self.applied if k[0] == charger_id]:
            del self.applied[key]

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Step every interval, or at once when ``wake`` is set (a command changed a mode)."""
        self.context.device_up(self.config.name)
        while not stop.is_set():
            started = time.monotonic()
            wake.clear()
            try:
                await self.step()
            except Exception:
                self.context.count_error(self.config.name, "controller_error")
                self.context.log.exception("%s: controller step failed", self.context.source_name)
            await wait_event(wake, self.settings.interval_s - (time.monotonic() - started))
