"""CO2: Scope 1 and 2 per site from meters, bills and fuel deliveries (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.co2.config import Co2Config
from cloud.domains.co2.jobs import SLOTS_JOB
from cloud.domains.co2.router import router

DOMAIN = Domain(
    name="co2",
    router=router,
    config_model=Co2Config,
    scopes={"co2:read": ("CO2 accounting per site and for the city: /api/co2/*", False),
            "co2:write": ("enter and import monthly inputs, recompute co2_slot", False)},
    jobs=[SLOTS_JOB],
)
