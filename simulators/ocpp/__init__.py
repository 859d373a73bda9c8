"""Simulated workplace charge points speaking OCPP 1.6J or 2.0.1, with commuters' cars.

    fleet = ChargerFleet("ws://127.0.0.1:9000/ocpp", chargers=10, version="mixed", time_scale=60)
    await fleet.start()
    fleet["CP01"].measurements()        # status, offered_a, current_a, power_w, energy_wh, soc, ...
    await fleet.stop()
"""

from simulators.ocpp.clock import SimClock, parse_start
from simulators.ocpp.fleet import VERSIONS, ChargerFleet, read_passwords
from simulators.ocpp.station import ChargerOptions, SentMessage, SimCharger
from simulators.ocpp.v16 import V16Charger
from simulators.ocpp.v201 import V201Charger

__all__ = ["VERSIONS", "ChargerFleet", "ChargerOptions", "SentMessage", "SimCharger", "SimClock", "V16Charger",
           "V201Charger", "parse_start", "read_passwords"]
