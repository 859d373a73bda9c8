"""Where the backfilled history of ``hitachi-omika`` has to end: the live PV site's counters.

Under ``hinode up`` the plant's grid meter and PV inverter are served by the PV site simulator
(``python -m simulators modbus --pv-site``, simulators/modbus/sunspec_site.py); its counters start
at a value computed from its simulated clock (``--start``, the demo model time) and the
commissioning date. The backfilled counters end there, so the first live interval continues the
history instead of looking like a meter reset.
"""

from __future__ import annotations

from simulators.load import COMMISSIONED
from simulators.modbus.sunspec_site import YIELD_KWH_PER_KWP_DAY

# The PV site simulator's start values (PvSiteSimulator.role_values and SunSpecSimulator._inverter):
# grid import 0.45 x rated load per hour, grid export 0.02 x kWp per hour, PV YIELD_KWH_PER_KWP_DAY per kWp-day,
# all since COMMISSIONED. tests/simulators/test_greencity_backfill.py checks them against the simulator.
IMPORT_SHARE_OF_RATED, EXPORT_SHARE_OF_KWP = 0.45, 0.02


def live_start_kwh(model_time_s: float, kwp: float = 400.0,
                   site_load_kw: float = 150.0) -> dict[tuple[str, str], float]:
    """(device, metric) -> the counter the PV site simulator serves first when its clock starts at ``model_time_s``."""
    hours = max(0.0, (model_time_s - COMMISSIONED) / 3600)
    return {("grid-meter", "energy_import"): IMPORT_SHARE_OF_RATED * site_load_kw * hours,
            ("grid-meter", "energy_export"): EXPORT_SHARE_OF_KWP * kwp * hours,
            ("pv-inverter", "energy_export"): kwp * YIELD_KWH_PER_KWP_DAY * hours / 24}
