"""What both OCPP versions have in common, as the rest of the source sees it.

``v16.py`` and ``v201.py`` each turn their version's messages into calls on
:class:`ChargerEvents` (implemented by the source) and implement :class:`ChargerLink`
(what the source and the site controller ask of a connected charger). Nothing outside
those two modules knows which version a charger speaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class OcppVersion(StrEnum):
    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class RateUnit(StrEnum):
    AMPS = "A"
    WATTS = "W"


# A charger's clock is trusted between these bounds, else its message counts at arrival time: a
# clock that lost power says 1970, and one running ahead would be refused by the cloud ingest (it
# takes readings at most 5 minutes ahead of its clock, cloud/config.py max_future_s).
EARLIEST_PLAUSIBLE_MS = 1_577_836_800_000      # 2020-01-01
MAX_CLOCK_AHEAD_MS = 60_000


def plausible_ts(ts_ms: int, arrival_ms: int) -> int:
    """The message's timestamp, or its arrival time when the charger's clock cannot be right."""
    return ts_ms if EARLIEST_PLAUSIBLE_MS <= ts_ms <= arrival_ms + MAX_CLOCK_AHEAD_MS else arrival_ms


# Nominal phase voltage used to turn amps into watts where a charger reports no voltage
# (evcc and the OCPP examples use the same figure).
NOMINAL_VOLTAGE_V = 230.0


@dataclass(slots=True, frozen=True)
class Sample:
    """One sampled value of a MeterValues / TransactionEvent message, both versions."""

    ts_ms: int
    measurand: str              # "Energy.Active.Import.Register" when the message omitted it
    value: float
    unit: str = ""              # as sent ("Wh" default for energy, "W", "kW", "A", "V", "Percent", ...)
    phase: str = ""             # "", "L1", "L1-N", ...
    context: str = ""           # "Sample.Periodic", "Transaction.Begin", ...
    location: str = ""          # "Outlet", "Inlet", "EV", ...


@dataclass(slots=True)
class BootInfo:
    vendor: str
    model: str
    serial: str = ""
    firmware: str = ""


@dataclass(slots=True)
class Capabilities:
    """Read from the charger's configuration / device model at boot."""

    rate_units: tuple[RateUnit, ...] = (RateUnit.AMPS,)   # ChargingScheduleAllowedChargingRateUnit
    phase_switch: bool = False                             # ConnectorSwitch3to1PhaseSupported
    max_profiles: int = 0
    connectors: int = 1


@dataclass(slots=True)
class TransactionStart:
    connector: int              # connector id (1.6) or EVSE id (2.0.1)
    transaction_id: str         # 1.6 ints become strings: one type for both versions
    id_tag: str
    meter_start_wh: float
    ts_ms: int


@dataclass(slots=True)
class TransactionStop:
    transaction_id: str
    meter_stop_wh: float | None
    ts_ms: int
    reason: str = ""


class ChargerEvents(Protocol):
    """What a version handler reports; the source implements it (one instance per charger)."""

    def on_boot(self, info: BootInfo) -> None: ...
    def on_status(self, connector: int, status: str, error_code: str, ts_ms: int) -> None: ...
    def on_samples(self, connector: int, transaction_id: str | None, samples: list[Sample]) -> None: ...
    def authorize(self, id_tag: str) -> bool: ...
    def on_transaction_started(self, start: TransactionStart) -> None: ...
    def on_transaction_ended(self, stop: TransactionStop) -> None: ...
    def on_protocol_error(self, code: str, detail: str) -> None: ...   # counted: FormationViolation, NotImplemented, ...
    def on_ready(self, link: "ChargerLink") -> None: ...   # booted, configured, capabilities read: commands may go
    def next_transaction_id(self) -> int: ...   # 1.6 only: the central system assigns ids (persisted, never repeated)


@dataclass(slots=True, frozen=True)
class BootSettings:
    """What the source tells a version handler when the charger connects."""

    boot_status: str = "Accepted"          # "Pending" / "Rejected" for an unknown charger (site config)
    heartbeat_interval_s: int = 300
    meter_value_interval_s: int = 10       # MeterValueSampleInterval / SampledDataCtrlr.TxUpdatedInterval
    measurands: tuple[str, ...] = (        # MeterValuesSampledData / SampledDataCtrlr.TxUpdatedMeasurands
        "Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Current.Offered",
        "Voltage", "SoC")
    response_timeout_s: float = 30.0


@dataclass(slots=True)
class Limit:
    """A charging limit for one connector (0 = the whole station)."""

    value: float
    unit: RateUnit
    phases: int | None = None     # None: the charger's default (OCPP assumes 3)


class ChargerLink(Protocol):
    """One connected charger, whichever version it speaks. Every call returns the charger's
    answer status ("Accepted", "Rejected", ...) or raises TimeoutError / ConnectionError."""

    charger_id: str
    version: OcppVersion
    capabilities: Capabilities

    async def set_limit(self, connector: int, limit: Limit, tx_profile: bool = False) -> str: ...
    async def clear_limit(self, connector: int) -> str: ...
    async def composite_schedule(self, connector: int, duration_s: int) -> dict: ...
    async def remote_start(self, connector: int, id_tag: str) -> str: ...
    async def remote_stop(self, transaction_id: str) -> str: ...
    async def reset(self, hard: bool = False) -> str: ...
    async def unlock(self, connector: int) -> str: ...
    async def trigger(self, message: str, connector: int | None = None) -> str: ...
    async def configure(self, key: str, value: str) -> str: ...   # ChangeConfiguration / SetVariables


@dataclass(slots=True)
class ConnectorState:
    """The source's view of one connector: what the controller and the board read."""

    charger: str
    connector: int
    status: str = "Unavailable"
    error_code: str = ""
    power_w: float = 0.0
    current_a: list[float] = field(default_factory=list)   # per phase, as measured
    offered_a: float | None = None
    energy_wh: float | None = None                          # the meter register
    soc: float | None = None
    phases_in_use: int = 0
    transaction_id: str | None = None
    id_tag: str = ""
    updated_ms: int = 0
