"""Energy: consumption from cumulative counters (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.energy.config import EnergyConfig
from cloud.domains.energy.jobs import SLOTS_JOB
from cloud.domains.energy.router import router

DOMAIN = Domain(
    name="energy",
    router=router,
    config_model=EnergyConfig,
    scopes={"energy:read": ("consumption from cumulative energy counters: /api/energy/*", False)},
    jobs=[SLOTS_JOB],
)
