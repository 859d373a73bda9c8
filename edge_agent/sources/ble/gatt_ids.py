"""16-bit UUIDs of the Bluetooth SIG services and characteristics the BLE source uses."""

from __future__ import annotations

from hinode.vitals import Category

# Services
CURRENT_TIME_SERVICE = 0x1805
GLUCOSE_SERVICE = 0x1808
HEALTH_THERMOMETER_SERVICE = 0x1809
HEART_RATE_SERVICE = 0x180D
BLOOD_PRESSURE_SERVICE = 0x1810
WEIGHT_SCALE_SERVICE = 0x181D
PULSE_OXIMETER_SERVICE = 0x1822

# Characteristics
GLUCOSE_MEASUREMENT = 0x2A18
TEMPERATURE_MEASUREMENT = 0x2A1C
CURRENT_TIME = 0x2A2B
GLUCOSE_MEASUREMENT_CONTEXT = 0x2A34
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
HEART_RATE_MEASUREMENT = 0x2A37
RECORD_ACCESS_CONTROL_POINT = 0x2A52
PLX_SPOT_CHECK_MEASUREMENT = 0x2A5E
PLX_CONTINUOUS_MEASUREMENT = 0x2A5F
WEIGHT_MEASUREMENT = 0x2A9D
WEIGHT_SCALE_FEATURE = 0x2A9E

NAMES: dict[int, str] = {
    CURRENT_TIME_SERVICE: "Current Time Service",
    GLUCOSE_SERVICE: "Glucose",
    HEALTH_THERMOMETER_SERVICE: "Health Thermometer",
    HEART_RATE_SERVICE: "Heart Rate",
    BLOOD_PRESSURE_SERVICE: "Blood Pressure",
    WEIGHT_SCALE_SERVICE: "Weight Scale",
    PULSE_OXIMETER_SERVICE: "Pulse Oximeter",
    GLUCOSE_MEASUREMENT: "Glucose Measurement",
    TEMPERATURE_MEASUREMENT: "Temperature Measurement",
    CURRENT_TIME: "Current Time",
    GLUCOSE_MEASUREMENT_CONTEXT: "Glucose Measurement Context",
    BLOOD_PRESSURE_MEASUREMENT: "Blood Pressure Measurement",
    HEART_RATE_MEASUREMENT: "Heart Rate Measurement",
    RECORD_ACCESS_CONTROL_POINT: "Record Access Control Point",
    PLX_SPOT_CHECK_MEASUREMENT: "PLX Spot-Check Measurement",
    PLX_CONTINUOUS_MEASUREMENT: "PLX Continuous Measurement",
    WEIGHT_MEASUREMENT: "Weight Measurement",
    WEIGHT_SCALE_FEATURE: "Weight Scale Feature",
}

# The characteristics that carry measurements, by category (what a session subscribes to).
MEASUREMENTS: dict[Category, tuple[int, ...]] = {
    Category.BLOOD_PRESSURE: (BLOOD_PRESSURE_MEASUREMENT,),
    Category.TEMPERATURE: (TEMPERATURE_MEASUREMENT,),
    Category.SPO2: (PLX_SPOT_CHECK_MEASUREMENT, PLX_CONTINUOUS_MEASUREMENT),
    Category.WEIGHT: (WEIGHT_MEASUREMENT,),
    Category.GLUCOSE: (GLUCOSE_MEASUREMENT,),
    Category.HEART_RATE: (HEART_RATE_MEASUREMENT,),
}

SERVICES: dict[Category, int] = {
    Category.BLOOD_PRESSURE: BLOOD_PRESSURE_SERVICE,
    Category.TEMPERATURE: HEALTH_THERMOMETER_SERVICE,
    Category.SPO2: PULSE_OXIMETER_SERVICE,
    Category.WEIGHT: WEIGHT_SCALE_SERVICE,
    Category.GLUCOSE: GLUCOSE_SERVICE,
    Category.HEART_RATE: HEART_RATE_SERVICE,
}


def name_of(uuid16: int) -> str:
    return NAMES.get(uuid16, f"0x{uuid16:04X}")
