"""The PV-surplus site controller for workplace EV charging (evcc's logic, pure).

Every control interval the OCPP source calls :meth:`Controller.step` with the grid/PV
readings and each connector's state; it applies the returned targets. No I/O, no clock:
time comes only from ``now_s``, so a day can be simulated in milliseconds.

One step, in order:

1. Surplus for EVs = export + what the EVs draw now (their own draw is theirs again).
   ``site_power = grid + residual``; without a grid meter, grid ~ EV power - PV.
   A site target, while set, replaces the surplus as the budget.
2. ``now`` and ``minpv`` loadpoints get their min current (higher priority first), then
   ``pv`` loadpoints already charging; one the site/circuit limits cannot give its min
   current is paused, never given less.
3. ``now`` loadpoints are topped up to their max current within the limits.
4. What is left of the budget goes to ``minpv`` and ``pv`` loadpoints, higher priority
   first: ``target = budget left / (V x phases)``, capped at max current and the limits,
   floored at min current while charging. ``pv`` loadpoints start and stop with evcc's
   enable/disable thresholds and delays and switch 1p/3p with its thresholds and delays.
   A car offered current for a minute without drawing any (full) leaves its share to the
   next loadpoint, as evcc's measured site power would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from edge_agent.sources.ocpp.controller_limits import LimitLedger
from edge_agent.sources.ocpp.controller_model import (
    MODES, Circuit, ConnectorKey, ControllerSettings, DisableSettings, EnableSettings,
    LoadpointInput, SiteDecision, SiteInput, Target, amps, floor_tenth, kw)
from edge_agent.sources.ocpp.controller_pv import LoadpointMemory, decide_phases, pv_hysteresis

__all__ = [
    "Circuit", "Controller", "ControllerSettings", "DisableSettings", "EnableSettings",
    "LoadpointInput", "SiteDecision", "SiteInput", "Target",
]


@dataclass
class _Plan:
    lp: LoadpointInput
    memory: LoadpointMemory
    max_a: float
    phases: int
    current_a: float = 0.0
    reason: str = ""
    active: bool = True          # connected, mode on, limits allow it
    reserved: bool = False       # holds its min current in the ledger
    limiter: str | None = None   # the limit that cut this loadpoint

    @property
    def key(self) -> ConnectorKey:
        return self.lp.key

    @property
    def min_a(self) -> float:
        return self.lp.min_current_a

    @property
    def switchable(self) -> bool:
        return self.lp.phase_switch_supported and self.lp.phases_config == "auto"

    def pause(self, reason: str, limiter: str | None = None) -> None:
        self.current_a, self.reason, self.active, self.limiter = 0.0, reason, False, limiter


IDLE_AFTER_S = 60.0          # offered current this long without drawing: the car is full or asleep
IDLE_NOTE = "car not taking power"


def _by_priority(plans: list[_Plan]) -> list[_Plan]:
    # Among equals, one already charging goes first: fewer stop/starts (cars dislike them).
    return sorted(plans, key=lambda p: (-p.lp.priority, not p.lp.charging, p.key))


def _phases_of(lp: LoadpointInput) -> int:
    # 0 = unknown: OCPP assumes 3 phases, and 3 is the safe side for watt limits
    return lp.phases_active if lp.phases_active in (1, 2) else 3


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _sanitized(lp: LoadpointInput) -> LoadpointInput:
    if math.isfinite(lp.power_w) and lp.power_w >= 0:
        return lp
    return replace(lp, power_w=0.0)


class Controller:
    def __init__(self, settings: ControllerSettings):
        self.settings = settings
        self._memory: dict[ConnectorKey, LoadpointMemory] = {}
        self._pv_share: dict[ConnectorKey, float] = {}

    def pv_share(self) -> dict[ConnectorKey, float]:
        """Per loadpoint, the share (0..1) of its measured power in the last step that PV
        surplus covered (or the site target, when set and larger): EV power is split pro rata."""
        return dict(self._pv_share)

    def step(self, now_s: float, site: SiteInput, loadpoints: list[LoadpointInput]) -> SiteDecision:
        settings = self.settings
        loadpoints = [_sanitized(lp) for lp in loadpoints]
        ev_power_w = sum(lp.power_w for lp in loadpoints)
        grid_w, pv_w, estimated = _finite_or_none(site.grid_w), _finite_or_none(site.pv_w), False
        if grid_w is None and pv_w is not None:
            grid_w, estimated = ev_power_w - pv_w, True
        surplus_w = 0.0 if grid_w is None else ev_power_w - (grid_w + settings.residual_w)
        site_target_w = _finite_or_none(site.site_target_w)
        if site_target_w is not None:
            site_target_w = max(site_target_w, 0.0)
        budget_w = site_target_w if site_target_w is not None else surplus_w

        self._memory = {lp.key: self._memory.get(lp.key)
                        or LoadpointMemory(enabled=lp.charging, phases=_phases_of(lp))
                        for lp in loadpoints}
        plans = [self._plan(lp) for lp in loadpoints]
        ledger = LimitLedger(settings)
        active = [p for p in plans if p.active]
        now_plans = _by_priority([p for p in active if p.lp.mode == "now"])
        minpv_plans = [p for p in active if p.lp.mode == "minpv"]
        pv_plans = [p for p in active if p.lp.mode == "pv"]

        charging_pv = [p for p in pv_plans if p.memory.enabled]
        for plan in _by_priority(now_plans + minpv_plans) + _by_priority(charging_pv):
            if not self._reserve_min(plan, ledger) and plan.lp.mode == "pv":
                plan.memory.enabled = False   # no grid-powered restart at min current later
        for plan in now_plans:
            if plan.active:
                self._top_up_now(plan, now_s, ledger)

        left_w = budget_w
        for plan in now_plans:
            if plan.active:
                left_w -= self._expected_draw_w(plan, now_s)
        for plan in minpv_plans:
            if plan.active:
                left_w -= self._watts(plan.min_a, plan.phases)
        for plan in _by_priority([p for p in minpv_plans + pv_plans if p.active]):
            left_w = self._share_surplus(plan, now_s, left_w, ledger)

        for plan in plans:
            if plan.current_a <= 0:
                plan.memory.offered_since = None
            elif plan.memory.offered_since is None:
                plan.memory.offered_since = now_s
        self._pv_share = self._shares(loadpoints, grid_w, ev_power_w, site_target_w)
        targets = {p.key: Target(current_a=p.current_a, phases=p.phases, enabled=p.current_a > 0,
                                 reason=p.reason) for p in plans}
        return SiteDecision(targets=targets, surplus_w=surplus_w, available_w=budget_w,
                            reason=self._site_reason(site_target_w, grid_w, estimated, surplus_w, plans),
                            grid_w=grid_w, grid_estimated=estimated, ev_power_w=ev_power_w)

    # --- the stages -------------------------------------------------------------------

    def _plan(self, lp: LoadpointInput) -> _Plan:
        memory = self._memory[lp.key]
        max_a = lp.max_current_a if lp.user_limit_a is None else min(lp.max_current_a, lp.user_limit_a)
        if lp.phase_switch_supported and lp.phases_config in ("1", "3"):
            memory.phases = int(lp.phases_config)
        elif not lp.phase_switch_supported:
            memory.phases = _phases_of(lp)
        elif lp.mode == "now":
            memory.phases = 3   # evcc: fast charging uses every phase
        plan = _Plan(lp=lp, memory=memory, max_a=max_a, phases=memory.phases)
        inactive_reason = ""
        if lp.mode not in MODES:
            inactive_reason = f"unknown mode {lp.mode!r}: off"
        elif lp.mode == "off":
            inactive_reason = "mode off"
        elif not lp.connected:
            inactive_reason = "no vehicle connected"
        if inactive_reason:
            memory.enabled, memory.paused_note = False, ""
            memory.forget_timers()
            plan.pause(inactive_reason)
        elif max_a < lp.min_current_a:
            cap = "max current" if lp.user_limit_a is None or lp.user_limit_a >= lp.max_current_a else "user limit"
            plan.pause(f"paused: {cap} {amps(max_a)} is below min current {amps(lp.min_current_a)}")
        return plan

    def _reserve_min(self, plan: _Plan, ledger: LimitLedger) -> bool:
        room = ledger.room(plan.key, plan.phases, plan.lp.circuit)
        if room.current_a + 1e-9 < plan.min_a:
            plan.pause(f"paused: {room.limiter} leaves no room for {amps(plan.min_a)}", room.limiter)
            return False
        ledger.set(plan.key, plan.min_a, plan.phases, plan.lp.circuit)
        plan.current_a, plan.reserved = plan.min_a, True
        return True

    def _top_up_now(self, plan: _Plan, now_s: float, ledger: LimitLedger) -> None:
        room = ledger.room(plan.key, plan.phases, plan.lp.circuit)
        plan.current_a = floor_tenth(min(plan.max_a, room.current_a))
        ledger.set(plan.key, plan.current_a, plan.phases, plan.lp.circuit)
        if plan.current_a < plan.max_a:
            plan.limiter = room.limiter
            plan.reason = f"now: {amps(plan.current_a)}, capped by {room.limiter}"
        elif plan.lp.user_limit_a is not None and plan.max_a < plan.lp.max_current_a:
            plan.reason = f"now: {amps(plan.max_a)}, capped by user limit"
        else:
            plan.reason = f"now: max current {amps(plan.max_a)}"
        if self._idle(plan, now_s):
            plan.reason = _join(plan.reason, IDLE_NOTE)

    def _expected_draw_w(self, plan: _Plan, now_s: float) -> float:
        """What a `now` car takes of the budget: its target, or less when it draws less."""
        offered_w = self._watts(plan.current_a, plan.phases)
        if plan.lp.charging:
            return min(offered_w, plan.lp.power_w)
        return 0.0 if self._idle(plan, now_s) else offered_w

    @staticmethod
    def _idle(plan: _Plan, now_s: float) -> bool:
        """Offered current for a while and not taking it (a full car): its budget goes to others."""
        since = plan.memory.offered_since
        return not plan.lp.charging and since is not None and now_s - since >= IDLE_AFTER_S

    def _share_surplus(self, plan: _Plan, now_s: float, left_w: float, ledger: LimitLedger) -> float:
        """Give ``plan`` its part of the budget left; return what is left after it."""
        lp, memory = plan.lp, plan.memory
        own_min_w = self._watts(plan.min_a, plan.phases) if lp.mode == "minpv" else 0.0
        want_w = left_w + own_min_w
        phase_note = ""
        if plan.switchable:
            before = memory.phases
            charging = lp.charging and (lp.mode == "minpv" or memory.enabled)
            phase_note = decide_phases(memory, now_s, want_w, plan.min_a, plan.max_a, charging, self.settings)
            if memory.phases != before and plan.reserved:
                room = ledger.room(plan.key, memory.phases, lp.circuit)
                if room.current_a + 1e-9 >= plan.min_a:
                    ledger.set(plan.key, plan.min_a, memory.phases, lp.circuit)
                else:
                    memory.phases, phase_note = before, ""
            plan.phases = memory.phases
            if lp.mode == "minpv":
                own_min_w = self._watts(plan.min_a, plan.phases)
                left_w = want_w - own_min_w

        min_w = self._watts(plan.min_a, plan.phases)
        pv_note = ""
        if lp.mode == "pv":
            was_enabled = memory.enabled
            pv_note = pv_hysteresis(memory, now_s, want_w, min_w, plan.min_a, self.settings)
            starting = memory.enable_since is not None or (memory.enabled and not was_enabled)
            if starting:
                room = ledger.room(plan.key, plan.phases, lp.circuit)
                if room.current_a + 1e-9 < plan.min_a:
                    # the surplus is there, the limits are not: no start, no enable timer
                    memory.enabled, memory.enable_since = False, None
                    plan.pause(f"paused: {room.limiter} leaves no room for {amps(plan.min_a)}", room.limiter)
                    plan.reason = _join(plan.reason, phase_note)
                    return left_w
            if not memory.enabled:
                if was_enabled:
                    ledger.release(plan.key)
                plan.current_a, plan.reserved = 0.0, False
                plan.reason = _join(pv_note, phase_note)
                # a start pending on this surplus claims it, so lower priorities wait their turn
                return left_w - min_w if starting else left_w
            if not was_enabled:
                self._reserve_min(plan, ledger)   # room checked above

        desired_a = want_w / self._watts(1.0, plan.phases)
        target_a = min(max(desired_a, plan.min_a), plan.max_a)
        room = ledger.room(plan.key, plan.phases, lp.circuit)
        if room.current_a < target_a:
            target_a, plan.limiter = room.current_a, room.limiter
        plan.current_a = max(floor_tenth(target_a), plan.min_a)
        ledger.set(plan.key, plan.current_a, plan.phases, lp.circuit)

        if plan.limiter:
            reason = f"{amps(plan.current_a)}, capped by {plan.limiter}"
        elif desired_a >= plan.max_a:
            reason = f"pv surplus {kw(want_w)}: max current {amps(plan.max_a)}"
        elif desired_a < plan.min_a:
            reason = pv_note or f"min current {amps(plan.min_a)} (pv surplus {kw(max(want_w, 0.0))})"
        else:
            reason = f"pv surplus {kw(want_w)}"
        if self._idle(plan, now_s):
            plan.reason = _join(reason, phase_note, IDLE_NOTE)
            return left_w + own_min_w
        plan.reason = _join(reason, phase_note)
        return left_w - (self._watts(plan.current_a, plan.phases) - own_min_w)

    # --- reporting --------------------------------------------------------------------

    def _watts(self, current_a: float, phases: int) -> float:
        return current_a * phases * self.settings.voltage_v

    @staticmethod
    def _shares(loadpoints: list[LoadpointInput], grid_w: float | None, ev_power_w: float,
                site_target_w: float | None) -> dict[ConnectorKey, float]:
        pv_w = 0.0 if grid_w is None else ev_power_w - grid_w
        if site_target_w is not None:
            pv_w = max(pv_w, site_target_w)
        share = min(1.0, max(0.0, pv_w) / ev_power_w) if ev_power_w > 0 else 0.0
        return {lp.key: share if lp.power_w > 0 else 0.0 for lp in loadpoints}

    @staticmethod
    def _site_reason(site_target_w: float | None, grid_w: float | None, estimated: bool, surplus_w: float,
                     plans: list[_Plan]) -> str:
        if site_target_w is not None:
            parts = [f"site target {kw(site_target_w)}"]
        elif grid_w is None:
            parts = ["no grid or pv meter: surplus unknown"]
        else:
            parts = [f"pv surplus {kw(surplus_w)}" if surplus_w > 0 else "no pv surplus"]
            if estimated:
                parts.append("no grid meter: estimated from pv")
        limiters = sorted({p.limiter for p in plans if p.limiter})
        if limiters:
            parts.append("limited by " + ", ".join(limiters))
        return "; ".join(parts)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
