"""The OCPP 2.0.1 device model as this CSMS uses it: what it reads and writes after boot, and how
the answers become :class:`Capabilities`.

Names are the 2.0.1 Part 2 Appendix 3 ones (``ocpp.v201.enums``): ``SmartChargingCtrlr.RateUnit``
is the member list of rate units the station accepts in a schedule ("A", "W" or "A,W"),
``SmartChargingCtrlr.Phases3to1`` whether it may switch from 3 to 1 phase during a transaction.
A station that answers ``UnknownComponent`` / ``Rejected`` keeps the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocpp.v201.datatypes import ComponentType, EVSEType, GetVariableDataType, SetVariableDataType, VariableType
from ocpp.v201.enums import (
    AlignedDataCtrlrVariableName as Aligned,
    ControllerComponentName as Ctrlr,
    SampledDataCtrlrVariableName as Sampled,
    SmartChargingCtrlrInstanceName,
    SmartChargingCtrlrVariableName as SmartCharging,
)

from edge_agent.sources.ocpp.model import BootSettings, Capabilities, RateUnit
from edge_agent.sources.ocpp.v201_samples import ENERGY_REGISTER

# Clock-aligned data outside transactions: only the register, each quarter hour. Sending the
# full measurand list at the sampling interval would duplicate every transaction sample.
ALIGNED_INTERVAL_S = 900


@dataclass(frozen=True, slots=True)
class VariableKey:
    component: str
    variable: str
    instance: str | None = None

    def __str__(self) -> str:
        return f"{self.component}.{self.variable}" + (f".{self.instance}" if self.instance else "")


RATE_UNIT = VariableKey(Ctrlr.smart_charging_ctrlr, SmartCharging.rate_unit)
PHASES_3TO1 = VariableKey(Ctrlr.smart_charging_ctrlr, SmartCharging.phases_3to1)
PROFILE_ENTRIES = VariableKey(Ctrlr.smart_charging_ctrlr, SmartCharging.entries,
                              SmartChargingCtrlrInstanceName.charging_profiles)

BOOT_READS = (RATE_UNIT, PHASES_3TO1)

# EVSEs are counted by asking for EVSE 1..n's Available, a variable every EVSE has: only an
# Accepted answer counts (some stations answer UnknownVariable for a component they lack, where
# the spec says UnknownComponent). Few enough items for a station's ItemsPerMessageGetVariables;
# StatusNotification / NotifyReport raise the count beyond.
EVSE_PROBE = 4


def parse_key(key: str) -> VariableKey:
    """``"Component.Variable"`` or ``"Component.Variable.Instance"`` (the ``configure`` key)."""
    parts = key.split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"configuration key {key!r}: expected 'Component.Variable' "
                         "(or 'Component.Variable.Instance'), e.g. 'OCPPCommCtrlr.HeartbeatInterval'")
    return VariableKey(*parts)


def get_request(key: VariableKey) -> GetVariableDataType:
    return GetVariableDataType(component=ComponentType(name=key.component),
                               variable=VariableType(name=key.variable, instance=key.instance))


def evse_probe() -> list[GetVariableDataType]:
    return [GetVariableDataType(component=ComponentType(name="EVSE", evse=EVSEType(id=evse_id)),
                                variable=VariableType(name="Available"))
            for evse_id in range(1, EVSE_PROBE + 1)]


def evse_count(results: list[dict]) -> int:
    """The highest EVSE id the station knows (0 when it knows none of them)."""
    return max((int((result["component"].get("evse") or {}).get("id", 0)) for result in results
                if result.get("attribute_status") == "Accepted"), default=0)


def set_request(key: VariableKey, value: str) -> SetVariableDataType:
    return SetVariableDataType(attribute_value=value, component=ComponentType(name=key.component),
                               variable=VariableType(name=key.variable, instance=key.instance))


def boot_writes(settings: BootSettings) -> list[tuple[VariableKey, str]]:
    sampled, aligned = Ctrlr.sampled_data_ctrlr, Ctrlr.aligned_data_ctrlr
    return [
        (VariableKey(sampled, Sampled.tx_updated_interval), str(settings.meter_value_interval_s)),
        (VariableKey(sampled, Sampled.tx_updated_measurands), ",".join(settings.measurands)),
        # the register at start and end is what meter start / stop are read from
        (VariableKey(sampled, Sampled.tx_started_measurands), ENERGY_REGISTER),
        (VariableKey(sampled, Sampled.tx_ended_measurands), ENERGY_REGISTER),
        (VariableKey(aligned, Aligned.measurands), ENERGY_REGISTER),
        (VariableKey(aligned, Aligned.interval), str(ALIGNED_INTERVAL_S)),
    ]


def key_of(result: dict) -> VariableKey:
    """The key a GetVariables / SetVariables result (snake_case dict) is about."""
    variable = result["variable"]
    return VariableKey(result["component"]["name"], variable["name"], variable.get("instance"))


def _rate_units(text: str) -> tuple[RateUnit, ...]:
    units = []
    for member in text.split(","):
        try:
            units.append(RateUnit(member.strip()))
        except ValueError:
            continue
    return tuple(dict.fromkeys(units))


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "1")


def apply_value(capabilities: Capabilities, key: VariableKey, value: str) -> None:
    if key == RATE_UNIT:
        capabilities.rate_units = _rate_units(value) or capabilities.rate_units
    elif key == PHASES_3TO1:
        capabilities.phase_switch = _true(value)


def apply_read_results(capabilities: Capabilities, results: list[dict]) -> None:
    for result in results:
        if result.get("attribute_status") == "Accepted" and result.get("attribute_value") is not None:
            apply_value(capabilities, key_of(result), result["attribute_value"])


def apply_report(capabilities: Capabilities, report_data: list[dict]) -> None:
    """What a NotifyReport (answer to a GetBaseReport the station or an operator asked for) tells:
    the same variables as at boot, the profile limit, and the EVSEs that exist."""
    for item in report_data:
        key = VariableKey(item["component"]["name"], item["variable"]["name"],
                          item["variable"].get("instance"))
        evse = item["component"].get("evse") or {}
        if evse.get("id"):
            capabilities.connectors = max(capabilities.connectors, int(evse["id"]))
        for attribute in item.get("variable_attribute") or ():
            if attribute.get("type", "Actual") == "Actual" and attribute.get("value") is not None:
                apply_value(capabilities, key, attribute["value"])
        characteristics = item.get("variable_characteristics") or {}
        if key == PROFILE_ENTRIES and characteristics.get("max_limit") is not None:
            capabilities.max_profiles = int(characteristics["max_limit"])
