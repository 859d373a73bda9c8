"""Interchange: a renewable energy community settled per 30-minute slot (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.interchange.config import InterchangeConfig
from cloud.domains.interchange.jobs import CHARGING_JOB, SETTLE_JOB
from cloud.domains.interchange.router import router

DOMAIN = Domain(
    name="interchange",
    router=router,
    config_model=InterchangeConfig,
    scopes={"interchange:read": ("renewable interchange communities: slots, flows, statements: "
                                 "/api/interchange/*", False),
            "interchange:write": ("settle an interchange community's range: "
                                  "POST /api/interchange/communities/{id}/settle", False)},
    jobs=[SETTLE_JOB, CHARGING_JOB],
)
