"""The tracker's thresholds (one pydantic model, so the wiring's config can embed or fill it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hinode.mobility import VehicleState


class TrackerRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Positions
    max_accuracy_m: float = Field(50.0, gt=0, description="a fix less accurate than this moves no zone membership "
                                                           "and adds nothing to a trip's distance")
    jitter_m: float = Field(8.0, ge=0, description="steps shorter than this (GPS wander) are not added to a "
                                                   "trip's distance until they add up")
    max_plausible_kmh: float = Field(80.0, gt=0, description="a step faster than this is a GPS jump, not travel")
    # Trips
    trip_min_speed_kmh: float = Field(3.0, ge=0, description="moving: speed above this")
    trip_start_s: float = Field(20.0, ge=0, description="vehicles that report no state: moving this long starts "
                                                        "a trip (at its first moving fix)")
    trip_end_idle_s: float = Field(120.0, ge=0, description="vehicles that report no state: stopped this long "
                                                            "ends a trip (at its first stopped fix)")
    # Violations
    speed_tolerance_kmh: float = Field(1.0, ge=0, description="speeding starts above max_speed_kmh + this and "
                                                              "ends at or below max_speed_kmh (hysteresis)")
    violation_min_s: float = Field(3.0, ge=0, description="speeding / riding in a no-ride zone must last this "
                                                          "long to be a violation")
    violation_clear_s: float = Field(3.0, ge=0, description="a violation ends once its condition has been clear "
                                                            "this long (leaving the zone ends it at once)")
    no_ride_speed_kmh: float = Field(6.0, ge=0, description="riding in a no-ride zone: faster than this (walking "
                                                           "a scooter through is allowed)")
    parked_speed_kmh: float = Field(1.0, ge=0, description="parked: speed below this (or, with no speed, a "
                                                           "parked state)")
    parking_grace_s: float = Field(60.0, ge=0, description="parked this long inside a no-parking zone (or away "
                                                           "from a hub in a station_parking zone) is a violation")
    station_radius_m: float = Field(40.0, gt=0, description="station_parking: parked within this of a hub is fine")
    # Health
    battery_low_pct: float = Field(15.0, ge=0, le=100)
    battery_charged_pct: float = Field(90.0, ge=0, le=100)
    comms_lost_s: float = Field(120.0, gt=0)
    idle_too_long_s: float = Field(86_400.0, gt=0)
    idle_move_m: float = Field(50.0, gt=0, description="moving farther than this from where it stood resets idle")

    def model_post_init(self, _context) -> None:
        if self.battery_charged_pct <= self.battery_low_pct:
            raise ValueError(f"battery_charged_pct ({self.battery_charged_pct}) must be above battery_low_pct "
                             f"({self.battery_low_pct})")


PARKED_STATES = frozenset({VehicleState.AVAILABLE, VehicleState.STOPPED, VehicleState.NON_OPERATIONAL,
                           VehicleState.RESERVED})
