"""The six virtual health devices of a visit kit. Readings are realistic and seeded; `values` overrides any
of them and `special` ("nan", "nres", "+inf", "-inf") makes the main value a special IEEE-11073 value.
Payload bytes come from simulators/ble/encoders.py (the decoders' round-trip partner)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bumble.gatt import Characteristic, CharacteristicValue, Service

from simulators.ble import encoders
from simulators.ble.device_base import Reading, VirtualDevice, uuid16
from simulators.ble.device_glucose import Glucometer

INDICATE = Characteristic.Properties.INDICATE
NOTIFY = Characteristic.Properties.NOTIFY
READ = Characteristic.Properties.READ


def _number(values: dict[str, Any], key: str, default: float) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"values.{key}: expected a number, got {value!r}")
    return value


class BloodPressureCuff(VirtualDevice):
    category = "blood_pressure"
    value_keys = frozenset({"systolic", "diastolic", "mean_arterial", "pulse", "status"})
    service_uuid = 0x1810
    has_clock = True
    MEASUREMENT = 0x2A35

    def services(self) -> list[Service]:
        return [Service(uuid16(self.service_uuid), [self.characteristic(self.MEASUREMENT, INDICATE)])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        systolic = _number(values, "systolic", self.rng.randint(110, 160))
        highest = max(40, min(95, int(systolic) - 25))
        diastolic = _number(values, "diastolic", self.rng.randint(min(65, highest), highest))
        mean = _number(values, "mean_arterial", round(diastolic + (systolic - diastolic) / 3))
        pulse = _number(values, "pulse", self.rng.randint(55, 95))
        status = tuple(values.get("status", ()))
        when = self.clock.now()
        payload = encoders.encode_blood_pressure(systolic, diastolic, mean, time=when, pulse=pulse, user_id=1,
                                                 status=status, special=special)
        return Reading(payload, _describe(when, special, systolic=systolic, diastolic=diastolic,
                                          mean_arterial=mean, pulse=pulse), self.MEASUREMENT)


class Thermometer(VirtualDevice):
    category = "temperature"
    value_keys = frozenset({"body_temp", "temp_site", "fever"})
    service_uuid = 0x1809
    has_clock = True
    MEASUREMENT = 0x2A1C

    def services(self) -> list[Service]:
        return [Service(uuid16(self.service_uuid), [self.characteristic(self.MEASUREMENT, INDICATE)])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        fever = bool(values.get("fever", False))
        default = self.rng.uniform(38.0, 39.5) if fever else self.rng.uniform(36.2, 37.4)
        celsius = round(_number(values, "body_temp", default), 1)
        site = str(values.get("temp_site", "ear"))
        when = self.clock.now()
        payload = encoders.encode_temperature(celsius, time=when, site=site, special=special)
        return Reading(payload, _describe(when, special, body_temp=celsius, temp_site=site), self.MEASUREMENT)


class PulseOximeter(VirtualDevice):
    category = "spo2"
    value_keys = frozenset({"spo2", "spo2_pulse", "continuous"})
    service_uuid = 0x1822
    has_clock = False
    SPOT_CHECK = 0x2A5E
    CONTINUOUS = 0x2A5F

    def services(self) -> list[Service]:
        return [Service(uuid16(self.service_uuid), [self.characteristic(self.SPOT_CHECK, INDICATE),
                                                   self.characteristic(self.CONTINUOUS, NOTIFY)])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        spo2 = _number(values, "spo2", self.rng.randint(93, 99))
        pulse = _number(values, "spo2_pulse", self.rng.randint(55, 95))
        if values.get("continuous"):
            payload = encoders.encode_plx_continuous(spo2, pulse, special=special)
            return Reading(payload, _describe(None, special, spo2=spo2, spo2_pulse=pulse, continuous=True),
                           self.CONTINUOUS)
        when = self.clock.now()
        payload = encoders.encode_plx_spot_check(spo2, pulse, time=when, special=special)
        return Reading(payload, _describe(when, special, spo2=spo2, spo2_pulse=pulse), self.SPOT_CHECK)

    async def deliver(self, reading: Reading) -> dict[str, Any]:
        if reading.characteristic == self.CONTINUOUS:     # a live stream: nobody listening means it is lost
            sent = self.awake and await self.send(reading)
            return {"device": self.id, "delivery": "sent" if sent else "dropped", **reading.description}
        return await super().deliver(reading)


class WeightScale(VirtualDevice):
    category = "weight"
    value_keys = frozenset({"weight"})
    service_uuid = 0x181D
    has_clock = True
    MEASUREMENT = 0x2A9D
    FEATURE = 0x2A9E
    WEIGHT_RESOLUTION_KG = 0.05     # announced in 0x2A9E: a decoder that ignores it is off by a factor 10
    HEIGHT_M = 1.58

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.usual_weight = round(self.rng.uniform(55.0, 75.0), 1)

    def services(self) -> list[Service]:
        feature = encoders.encode_weight_feature(weight_resolution_kg=self.WEIGHT_RESOLUTION_KG,
                                                 height_resolution_m=0.001, timestamp=True, bmi=True)
        return [Service(uuid16(self.service_uuid), [
            self.characteristic(self.MEASUREMENT, INDICATE),
            self.characteristic(self.FEATURE, READ, CharacteristicValue(read=lambda _c: feature)),
        ])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        default = self.usual_weight + self.rng.uniform(-0.5, 0.5)
        kg = round(round(_number(values, "weight", default) / self.WEIGHT_RESOLUTION_KG)
                   * self.WEIGHT_RESOLUTION_KG, 2)
        bmi = round(kg / self.HEIGHT_M ** 2, 1)
        when = self.clock.now()
        payload = encoders.encode_weight(kg, time=when, user_id=1, bmi=bmi, height_m=self.HEIGHT_M,
                                         resolution_kg=self.WEIGHT_RESOLUTION_KG, special=special)
        return Reading(payload, _describe(when, special, weight=kg, bmi=bmi, height=round(self.HEIGHT_M * 100, 1)),
                       self.MEASUREMENT)


class HeartRateStrap(VirtualDevice):
    category = "heart_rate"
    value_keys = frozenset({"heart_rate"})
    service_uuid = 0x180D
    has_clock = False
    stores_records = False          # a strap streams; it keeps nothing
    MEASUREMENT = 0x2A37

    def services(self) -> list[Service]:
        return [Service(uuid16(self.service_uuid), [self.characteristic(self.MEASUREMENT, NOTIFY)])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        if special is not None:
            raise ValueError("a heart rate strap sends integers: it has no special values")
        bpm = int(_number(values, "heart_rate", self.rng.randint(55, 95)))
        rr = round(60 / bpm, 3)
        payload = encoders.encode_heart_rate(bpm, contact=True, rr_intervals_s=(rr,))
        return Reading(payload, _describe(None, None, heart_rate=bpm, rr_interval=rr), self.MEASUREMENT)


def _describe(when: datetime | None, special: str | None, **values: Any) -> dict[str, Any]:
    return {"values": values, "special": special, "device_time": when.isoformat() if when else None}


DEVICE_TYPES: dict[str, type[VirtualDevice]] = {
    "blood_pressure": BloodPressureCuff,
    "temperature": Thermometer,
    "spo2": PulseOximeter,
    "weight": WeightScale,
    "glucose": Glucometer,
    "heart_rate": HeartRateStrap,
}
