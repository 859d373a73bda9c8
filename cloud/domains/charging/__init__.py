"""Charging: workplace EV charging sessions, their monthly settlement per employee tag, and each
connector's newest state (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.charging.config import ChargingConfig
from cloud.domains.charging.router import router

DOMAIN = Domain(
    name="charging",
    router=router,
    config_model=ChargingConfig,
    scopes={"charging:read": ("EV charging sessions per employee tag, monthly settlement and charger state: "
                              "/api/charging/*", False)},
)
