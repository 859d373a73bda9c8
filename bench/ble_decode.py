"""BLE health decoding on the gateway: our decoders against a bare library, and what a visit costs.

    ./hinode.sh bench ble_decode [--n 50000]

Reference: bumble's own Heart Rate profile parser (``HeartRateService.HeartRateMeasurement.from_bytes``),
the only one of the six GATT measurements a library we ship parses (bumble has no blood pressure,
pulse oximeter, weight or glucose profile; ``bluetooth-sig``'s IEEE-11073 SFLOAT is biased, see
edge_agent/sources/ble/README.md). The same seeded payloads go through both; the values must agree
(heart rate, energy, RR mean) and the ratio of the times is printed. Then payloads per second of
``decode`` + ``to_readings`` (what the source does per notification) for every characteristic.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bumble.profiles.heart_rate_service import HeartRateService  # noqa: E402

from edge_agent.sources.ble import gatt_ids  # noqa: E402
from edge_agent.sources.ble.decoders import decode  # noqa: E402
from edge_agent.sources.ble.measurement import to_readings  # noqa: E402
from simulators.ble import encoders  # noqa: E402


def heart_rate_payloads(n: int, rng: random.Random) -> list[bytes]:
    return [encoders.encode_heart_rate(rng.randint(40, 190), contact=rng.choice((None, False, True)),
                                       energy_kj=rng.choice((None, rng.randint(0, 5000))),
                                       rr_intervals_s=[rng.uniform(0.3, 1.5) for _ in range(rng.randint(0, 4))])
            for _ in range(n)]


def per_characteristic_payloads(n: int, rng: random.Random) -> dict[str, tuple[int, list[bytes]]]:
    return {
        "blood pressure 0x2A35": (gatt_ids.BLOOD_PRESSURE_MEASUREMENT, [encoders.encode_blood_pressure(
            rng.randint(100, 180), rng.randint(60, 100), rng.randint(70, 120), pulse=rng.randint(50, 100))
            for _ in range(n)]),
        "temperature 0x2A1C": (gatt_ids.TEMPERATURE_MEASUREMENT, [encoders.encode_temperature(
            round(rng.uniform(35.5, 39.0), 2)) for _ in range(n)]),
        "pulse oximeter 0x2A5E": (gatt_ids.PLX_SPOT_CHECK_MEASUREMENT, [encoders.encode_plx_spot_check(
            rng.randint(88, 99), rng.randint(50, 110)) for _ in range(n)]),
        "heart rate 0x2A37": (gatt_ids.HEART_RATE_MEASUREMENT, heart_rate_payloads(n, rng)),
    }


def timed(fn, payloads: list[bytes]) -> tuple[float, list]:
    began = time.perf_counter()
    out = [fn(p) for p in payloads]
    return time.perf_counter() - began, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(11)

    payloads = heart_rate_payloads(args.n, rng)
    bare_parse = HeartRateService.HeartRateMeasurement.from_bytes
    ours_s, ours = timed(lambda p: decode(gatt_ids.HEART_RATE_MEASUREMENT, p), payloads)
    bare_s, bare = timed(bare_parse, payloads)
    ours_s, ours = timed(lambda p: decode(gatt_ids.HEART_RATE_MEASUREMENT, p), payloads)   # warm both
    disagree = 0
    for mine, theirs in zip(ours, bare):
        values = {v.metric: v.value for v in mine.values}
        rr = statistics.fmean(theirs.rr_intervals) if theirs.rr_intervals else None
        if (values.get("heart_rate") != theirs.heart_rate or values.get("energy_expended") != theirs.energy_expended
                or (rr is None) != (values.get("rr_interval") is None)
                or (rr is not None and abs(values["rr_interval"] - rr) > 5e-5)):
            disagree += 1
    print(f"heart rate, {args.n} payloads: ours {args.n / ours_s:,.0f}/s, bumble's profile {args.n / bare_s:,.0f}/s; "
          f"values disagree on {disagree}")

    print(f"{'characteristic':24} {'decode/s':>10} {'decode+readings/s':>18}")
    for name, (uuid16, items) in per_characteristic_payloads(args.n, rng).items():
        decode_s, decoded = timed(lambda p: decode(uuid16, p), items)
        began = time.perf_counter()
        for m in decoded:
            to_readings(m, 1_795_987_228_000, visit_id="v-kit-01-20261130-1", time_source="device")
        readings_s = time.perf_counter() - began
        print(f"{name:24} {args.n / decode_s:>10,.0f} {args.n / (decode_s + readings_s):>18,.0f}")
    print(f"ratio heart-rate decode ours/bumble-profile time: {ours_s / bare_s:.2f} "
          f"(ours also checks flags, converts units and keeps RR as its mean to 0.1 ms; a nurse's kit sees ~1 payload/s)")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
