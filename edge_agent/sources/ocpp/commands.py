"""Commands of the OCPP source: modes, limits, remote control, the RFID list, site targets.

Params are checked before anything goes to a charger (unknown command, unknown or missing
param, wrong type → ``rejected`` with the reason). A charger that is not connected →
``failed``. Modes, limits, tags and the site target are kept in the sessions store, so
they survive a restart; a charger's answer other than ``Accepted`` → ``failed`` naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_agent.sources.base import CommandOutcome, now_ms
from edge_agent.sources.ocpp.config import MODES
from edge_agent.sources.ocpp.model import Limit, RateUnit
from hinode.contract import Command

if TYPE_CHECKING:
    from edge_agent.sources.ocpp.source import Source

SOURCE_KEY = "_source"
# name -> (params it takes, whether it targets a charger (True), the source (False) or either (None))
SPEC: dict[str, tuple[tuple[str, ...], bool | None]] = {
    "set_mode": (("mode", "connector"), True),
    "set_current_limit": (("amps", "connector"), True),
    "remote_start": (("id_tag", "connector"), True),
    "remote_stop": (("connector", "transaction_id"), True),
    "reset": (("hard",), True),
    "unlock": (("connector",), True),
    "trigger": (("message", "connector"), True),
    "set_tags": (("tags",), None),
    "add_tag": (("tag",), None),
    "remove_tag": (("tag",), None),
    "site_target": (("power_kw", "from_ts", "until_ts", "clear"), False),
}
MAX_CURRENT_A = 80.0


class Rejected(Exception):
    pass


def _param(params: dict, name: str, kind: type, *, required: bool = False, default=None, minimum=None):
    if name not in params or params[name] is None:
        if required:
            raise Rejected(f"param {name!r} is required")
        return default
    value = params[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise Rejected(f"param {name!r}: expected true or false (got {value!r})")
    if kind in (int, float):
        if isinstance(value, bool):
            raise Rejected(f"param {name!r}: expected a number (got {value!r})")
        try:
            number = kind(value) if not isinstance(value, str) else kind(float(value))
        except (TypeError, ValueError):
            raise Rejected(f"param {name!r}: expected a number (got {value!r})") from None
        if kind is int and float(value) != number:
            raise Rejected(f"param {name!r}: expected a whole number (got {value!r})")
        if minimum is not None and number < minimum:
            raise Rejected(f"param {name!r}: expected at least {minimum} (got {value!r})")
        return number
    text = str(value).strip()
    if required and not text:
        raise Rejected(f"param {name!r}: expected a non-empty text")
    return text


class OcppCommands:
    """Executes commands for the chargers of one source; never raises."""

    def __init__(self, source: "Source"):
        self.source = source
        self.context = source.context

    def _rejected(self, device: str | None, message: str) -> CommandOutcome:
        self.context.count_error(device or SOURCE_KEY, "command_rejected")
        return CommandOutcome.rejected(message)

    def _failed(self, device: str | None, message: str) -> CommandOutcome:
        self.context.count_error(device or SOURCE_KEY, "command_failed")
        self.context.log.warning("%s: command failed on %s: %s", self.context.source_name, device or "source", message)
        return CommandOutcome.failed(message)

    async def handle(self, command: Command, device: str | None) -> CommandOutcome:
        spec = SPEC.get(command.name)
        if spec is None:
            return self._rejected(device, f"unknown command {command.name!r}; the ocpp source supports: "
                                          f"{', '.join(SPEC)}")
        allowed, on_charger = spec
        unknown = sorted(set(command.params) - set(allowed))
        if unknown:
            return self._rejected(device, f"{command.name} takes params {', '.join(allowed)} (unknown: "
                                          f"{', '.join(unknown)})")
        if on_charger is True and device is None:
            return self._rejected(None, f"{command.name} targets a charger, not source {self.context.source_name}")
        if on_charger is False and device is not None:
            return self._rejected(device, f"{command.name} targets source {self.context.source_name}, not a charger")
        if device is not None and device not in self.source.chargers:
            return self._rejected(None, f"{device!r} is not a charger of source {self.context.source_name}")
        try:
            return await getattr(self, "_" + command.name)(device, command.params)
        except Rejected as exc:
            return self._rejected(device, str(exc))
        except (TimeoutError, ConnectionError) as exc:
            return self._failed(device, f"charger did not answer: {exc or type(exc).__name__}")
        except Exception as exc:    # a library surprise must become an outcome, not a dead command
            self.context.log.exception("%s: unexpected error in command %s", self.context.source_name, command.name)
            return self._failed(device, f"internal error: {exc!r}"[:400])

    def _link(self, device: str):
        link = self.source.chargers[device].link
        if link is None:
            raise ConnectionError(f"charger {device} is not connected")
        return link

    def _answer(self, device: str, what: str, status: str, **data) -> CommandOutcome:
        if status in ("Accepted", "Unlocked"):
            return CommandOutcome.done(f"{what}: Accepted", **data)
        return self._failed(device, f"{what}: charger answered {status}")

    async def _set_mode(self, device, params) -> CommandOutcome:
        mode = _param(params, "mode", str, required=True)
        if mode not in MODES:
            raise Rejected(f"param 'mode': expected one of {', '.join(MODES)} (got {mode!r})")
        connector = _param(params, "connector", int, minimum=1)
        charger = self.source.chargers[device]
        charger.set_mode(mode, connector)
        for number in ([connector] if connector else [n for n in charger.connectors if n > 0]):
            charger.emit_state(number)
        await self.source.control_now()
        return CommandOutcome.done(f"mode {mode}" + (f" on connector {connector}" if connector else ""), mode=mode)

    async def _set_current_limit(self, device, params) -> CommandOutcome:
        amps = _param(params, "amps", float, required=True, minimum=0.0)
        if amps > MAX_CURRENT_A:
            raise Rejected(f"param 'amps': expected at most {MAX_CURRENT_A:g} (got {amps:g})")
        connector = _param(params, "connector", int, minimum=1)
        charger = self.source.chargers[device]
        charger.set_max_current(amps, connector)
        if self.source.control is None:
            if charger.link is None:
                return CommandOutcome.done(f"limit {amps:g} A kept; sent when charger {device} connects", amps=amps)
            status = await charger.link.set_limit(connector or 0, Limit(amps, RateUnit.AMPS))
            return self._answer(device, f"limit {amps:g} A", status, amps=amps)
        await self.source.control_now()
        return CommandOutcome.done(f"limit {amps:g} A, applied by the controller", amps=amps)

    async def _remote_start(self, device, params) -> CommandOutcome:
        id_tag = _param(params, "id_tag", str, required=True)
        connector = _param(params, "connector", int, default=1, minimum=1)
        status = await self._link(device).remote_start(connector, id_tag)
        return self._answer(device, f"remote start on connector {connector}", status)

    async def _remote_stop(self, device, params) -> CommandOutcome:
        transaction_id = _param(params, "transaction_id", str)
        connector = _param(params, "connector", int, minimum=1)
        if transaction_id is None:
            if connector is None:
                raise Rejected("remote_stop needs param 'connector' or 'transaction_id'")
            charger = self.source.chargers[device]
            state = charger.connectors.get(connector)
            session = self.source.store.on_connector(device, connector)
            transaction_id = (state.transaction_id if state and state.transaction_id else
                              session.transaction_id if session else None)
            if transaction_id is None:
                return self._failed(device, f"no session runs on connector {connector}")
        status = await self._link(device).remote_stop(transaction_id)
        return self._answer(device, f"remote stop of transaction {transaction_id}", status,
                            transaction_id=transaction_id)

    async def _reset(self, device, params) -> CommandOutcome:
        hard = _param(params, "hard", bool, default=False)
        status = await self._link(device).reset(hard)
        return self._answer(device, f"{'hard' if hard else 'soft'} reset", status)

    async def _unlock(self, device, params) -> CommandOutcome:
        connector = _param(params, "connector", int, required=True, minimum=1)
        status = await self._link(device).unlock(connector)
        return self._answer(device, f"unlock connector {connector}", status)

    async def _trigger(self, device, params) -> CommandOutcome:
        message = _param(params, "message", str, required=True)
        connector = _param(params, "connector", int, minimum=0)
        link = self._link(device)
        try:
            status = await link.trigger(message, connector)
        except ValueError:
            raise Rejected(f"param 'message': {message!r} is not a message this charger can be asked for") from None
        return self._answer(device, f"trigger {message}", status)

    async def _set_tags(self, device, params) -> CommandOutcome:
        text = _param(params, "tags", str, default="")
        tags = sorted({t.strip() for t in text.split(",") if t.strip()})
        too_long = [t for t in tags if len(t) > 20]
        if too_long:
            raise Rejected(f"param 'tags': an OCPP id tag has at most 20 characters (got {', '.join(too_long)})")
        self.source.store.set_tags(tags)
        return CommandOutcome.done(f"{len(tags)} tags", count=len(tags))

    async def _add_tag(self, device, params) -> CommandOutcome:
        tag = _param(params, "tag", str, required=True)
        if len(tag) > 20:
            raise Rejected(f"param 'tag': an OCPP id tag has at most 20 characters (got {len(tag)})")
        self.source.store.add_tag(tag)
        return CommandOutcome.done(f"tag {tag} added")

    async def _remove_tag(self, device, params) -> CommandOutcome:
        tag = _param(params, "tag", str, required=True)
        removed = self.source.store.remove_tag(tag)
        return CommandOutcome.done(f"tag {tag} " + ("removed" if removed else "was not in the list"))

    async def _site_target(self, device, params) -> CommandOutcome:
        from edge_agent.sources.ocpp.control_loop import SiteTarget

        control = self.source.control
        if control is None:
            raise Rejected(f"source {self.context.source_name} has no controller section: no site target")
        if _param(params, "clear", bool, default=False):
            control.set_site_target(None)
            return CommandOutcome.done("site target cleared")
        power_kw = _param(params, "power_kw", float, required=True, minimum=0.0)
        from_ts = _param(params, "from_ts", int, default=now_ms(), minimum=0)
        until_ts = _param(params, "until_ts", int, required=True, minimum=0)
        if until_ts <= from_ts:
            raise Rejected(f"param 'until_ts' ({until_ts}) must be after 'from_ts' ({from_ts})")
        control.set_site_target(SiteTarget(power_kw, from_ts, until_ts))
        await self.source.control_now()
        return CommandOutcome.done(f"site target {power_kw:g} kW", power_kw=power_kw)
