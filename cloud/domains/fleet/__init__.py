"""Fleet operations: live vehicles, zones and violations, trips, hubs, MDS-style events, a GBFS 3.0 feed
(README.md in this folder).

The domain's router is every ``router.py``/``router_*.py`` module of this package except
``router_gbfs.py``, which is the ``public_router`` (the GBFS feed needs no token); its lifespan runs the
fleet worker (worker.py) inside ``python -m cloud serve``.
"""

import importlib
import pkgutil

from fastapi import APIRouter

from cloud.domains import Domain
from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.jobs import JOBS
from cloud.domains.fleet.worker_service import worker_lifespan

PUBLIC_ROUTER_MODULE = "router_gbfs"


def _router(names: list[str]) -> APIRouter:
    combined = APIRouter()
    for name in names:
        combined.include_router(importlib.import_module(f"{__name__}.{name}").router)
    return combined


_ROUTER_MODULES = sorted(info.name for info in pkgutil.iter_modules(__path__)
                         if info.name == "router" or info.name.startswith("router_"))

DOMAIN = Domain(
    name="fleet",
    router=_router([name for name in _ROUTER_MODULES if name != PUBLIC_ROUTER_MODULE]),
    public_router=_router([PUBLIC_ROUTER_MODULE]) if PUBLIC_ROUTER_MODULE in _ROUTER_MODULES else None,
    config_model=FleetConfig,
    scopes={
        "fleet:read": ("mobility fleets: live vehicles, events, violations, trips, zones, hubs, alerts", False),
        "fleet:write": ("mobility fleets: changes to the fleet domain's data (reserved)", False),
    },
    jobs=JOBS,
    lifespan=worker_lifespan,
)
