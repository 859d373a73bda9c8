"""The charger's configuration: 1.6 configuration keys, also reachable as 2.0.1 variables.

One table holds every setting once, under its 1.6 key, with the 2.0.1 component and
variable it answers to. A 2.0.1 GetVariables/SetVariables for a name the table does not
map is looked up as a 1.6 key name too, so a central system asking either way gets an
answer.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register", "Power.Active.Import", "Power.Offered", "Current.Import",
    "Current.Offered", "Voltage", "Frequency", "SoC")
DEFAULT_MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import",
                      "Current.Offered", "Voltage", "SoC")
RATE_UNITS_16 = {"A": "Current", "W": "Power"}


@dataclass(frozen=True)
class Setting:
    key: str
    component: str
    variable: str
    kind: str = "str"           # int, bool, measurands, str
    writable: bool = True


SETTINGS = (
    Setting("HeartbeatInterval", "OCPPCommCtrlr", "HeartbeatInterval", "int"),
    Setting("MeterValueSampleInterval", "SampledDataCtrlr", "TxUpdatedInterval", "int"),
    Setting("MeterValuesSampledData", "SampledDataCtrlr", "TxUpdatedMeasurands", "measurands"),
    Setting("MeterValuesSampledDataMaxLength", "SampledDataCtrlr", "TxUpdatedMeasurandsMaxLength",
            "int", writable=False),
    Setting("ChargingScheduleAllowedChargingRateUnit", "SmartChargingCtrlr", "RateUnit", writable=False),
    Setting("ConnectorSwitch3to1PhaseSupported", "SmartChargingCtrlr", "Phases3to1", "bool", writable=False),
    Setting("NumberOfConnectors", "ChargingStation", "NumberOfConnectors", "int", writable=False),
    Setting("ChargeProfileMaxStackLevel", "SmartChargingCtrlr", "ProfileStackLevel", "int", writable=False),
    Setting("ChargingScheduleMaxPeriods", "SmartChargingCtrlr", "PeriodsPerSchedule", "int", writable=False),
    Setting("MaxChargingProfilesInstalled", "SmartChargingCtrlr", "Entries", "int", writable=False),
    Setting("AuthorizeRemoteTxRequests", "AuthCtrlr", "AuthorizeRemoteStart", "bool"),
    Setting("ConnectionTimeOut", "TxCtrlr", "EVConnectionTimeOut", "int"),
)
_BY_KEY = {s.key: s for s in SETTINGS}
_BY_NAME = {(s.component, s.variable): s for s in SETTINGS}


class DeviceModel:
    def __init__(self, *, version: str, connectors: int, rate_units: tuple[str, ...], phase_switching: bool,
                 meter_interval_s: int, max_stack_level: int = 8):
        self.version = version
        units = ",".join(RATE_UNITS_16[u] for u in rate_units) if version == "1.6" else ",".join(rate_units)
        self.values: dict[str, str] = {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": str(meter_interval_s),
            "MeterValuesSampledData": ",".join(DEFAULT_MEASURANDS),
            "MeterValuesSampledDataMaxLength": str(len(SUPPORTED_MEASURANDS)),
            "ChargingScheduleAllowedChargingRateUnit": units,
            "ConnectorSwitch3to1PhaseSupported": "true" if phase_switching else "false",
            "NumberOfConnectors": str(connectors),
            "ChargeProfileMaxStackLevel": str(max_stack_level),
            "ChargingScheduleMaxPeriods": "24",
            "MaxChargingProfilesInstalled": "16",
            "AuthorizeRemoteTxRequests": "false",
            "ConnectionTimeOut": "60",
        }

    @property
    def measurands(self) -> list[str]:
        return [m for m in self.values["MeterValuesSampledData"].split(",") if m]

    @property
    def meter_interval_s(self) -> int:
        return int(self.values["MeterValueSampleInterval"])

    def setting(self, key: str) -> Setting | None:
        return _BY_KEY.get(key)

    def key_for(self, component: str, variable: str) -> str | None:
        found = _BY_NAME.get((component, variable))
        if found:
            return found.key
        return variable if variable in _BY_KEY else None

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> str:
        """"Accepted", "Rejected" (read-only or a bad value) or "NotSupported" (unknown key)."""
        setting = _BY_KEY.get(key)
        if setting is None:
            return "NotSupported"
        if not setting.writable:
            return "Rejected"
        value = value.strip()
        if setting.kind == "int":
            if not value.isdigit():
                return "Rejected"
        elif setting.kind == "bool":
            if value.lower() not in ("true", "false"):
                return "Rejected"
            value = value.lower()
        elif setting.kind == "measurands":
            wanted = [m.strip() for m in value.split(",") if m.strip()]
            if len(wanted) > len(SUPPORTED_MEASURANDS) or any(m not in SUPPORTED_MEASURANDS for m in wanted):
                return "Rejected"
            value = ",".join(wanted)
        self.values[key] = value
        return "Accepted"
