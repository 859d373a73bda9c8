"""Per-loadpoint memory of the PV modes: enable/disable hysteresis and 1p/3p switching (evcc)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.ocpp.controller_model import ControllerSettings, amps, duration, kw


@dataclass
class LoadpointMemory:
    enabled: bool                       # pv mode: charging allowed (hysteresis state)
    phases: int                         # what the controller last commanded (switchable chargers)
    enable_since: float | None = None   # since when the enable condition holds
    disable_since: float | None = None
    phase_since: float | None = None
    phase_goal: int | None = None       # the phase count the running phase timer aims at
    paused_note: str = ""               # why pv charging stopped, shown until it resumes
    offered_since: float | None = None  # since when the target has been above 0

    def forget_timers(self) -> None:
        self.enable_since = self.disable_since = self.phase_since = self.phase_goal = None


def pv_hysteresis(memory: LoadpointMemory, now_s: float, want_w: float, min_w: float,
                  min_a: float, settings: ControllerSettings) -> str:
    """Update ``memory.enabled`` for ``pv`` mode; return a note on a pending or past switch.

    ``want_w`` is the power this loadpoint could take (the budget left for it, its own draw
    included), ``min_w`` its min current at the phases it uses.
    """
    if memory.enabled:
        memory.enable_since = None
        tolerated_import = max(settings.disable.threshold_w, 0.0)
        if want_w < min_w - tolerated_import:
            if memory.disable_since is None or now_s < memory.disable_since:   # clock stepped back
                memory.disable_since = now_s
            held = now_s - memory.disable_since
            if held >= settings.disable.delay_s:
                memory.enabled = False
                memory.disable_since = None
                memory.paused_note = (f"paused: surplus below {amps(min_a)} for "
                                      f"{duration(settings.disable.delay_s)}")
                return memory.paused_note
            return (f"surplus below {amps(min_a)}, pausing in "
                    f"{duration(settings.disable.delay_s - held)}")
        memory.disable_since = None
        return ""

    memory.disable_since = None
    threshold = settings.enable.threshold_w
    needed_w = min_w if threshold == 0 else -threshold
    if want_w >= needed_w:
        if memory.enable_since is None or now_s < memory.enable_since:
            memory.enable_since = now_s
        held = now_s - memory.enable_since
        if held >= settings.enable.delay_s:
            memory.enabled = True
            memory.enable_since = None
            memory.paused_note = ""
            return ""
        return f"waiting for enable delay ({duration(settings.enable.delay_s - held)} left)"
    memory.enable_since = None
    waiting = f"waiting for surplus ({kw(max(want_w, 0.0))} of {kw(needed_w)})"
    return f"{memory.paused_note}; {waiting}" if memory.paused_note else waiting


def decide_phases(memory: LoadpointMemory, now_s: float, available_w: float, min_a: float,
                  max_a: float, charging: bool, settings: ControllerSettings) -> str:
    """evcc's pvScalePhases: update ``memory.phases``; return a note on a pending switch.

    3p -> 1p when the power does not reach min current on 3 phases, held for the disable
    delay; 1p -> 3p when it is more than 1 phase can take and reaches min current on 3
    phases, held for the enable delay. Not charging: switch at once.
    """
    voltage = settings.voltage_v
    three_phase_min_w = 3 * voltage * min_a
    if memory.phases >= 3 and available_w < three_phase_min_w:
        goal, delay = 1, settings.disable.delay_s
    elif memory.phases == 1 and available_w > voltage * max_a and available_w >= three_phase_min_w:
        goal, delay = 3, settings.enable.delay_s
    else:
        memory.phase_since = memory.phase_goal = None
        return ""
    if memory.phase_goal != goal or memory.phase_since is None or now_s < memory.phase_since:
        memory.phase_goal, memory.phase_since = goal, now_s
    held = now_s - memory.phase_since
    if not charging or held >= delay:
        memory.phases = goal
        memory.phase_since = memory.phase_goal = None
        return f"switched to {goal}p"
    return f"switching to {goal}p in {duration(delay - held)}"
