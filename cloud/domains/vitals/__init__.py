"""Vitals: patient registry, care teams, consent, audit and consent-checked reads (README.md in this folder).

The domain's router is every ``router.py``/``router_*.py`` module of this package (each exports
``router``), found with pkgutil so that modules added next to the core ones join without an edit here.
"""

import importlib
import pkgutil

from fastapi import APIRouter

from cloud.domains import Domain
from cloud.domains.vitals.config import VitalsConfig
from cloud.domains.vitals.jobs import JOBS


def _combined_router() -> APIRouter:
    combined = APIRouter()
    names = sorted(info.name for info in pkgutil.iter_modules(__path__)
                   if info.name == "router" or info.name.startswith("router_"))
    for name in names:
        combined.include_router(importlib.import_module(f"{__name__}.{name}").router)
    return combined


DOMAIN = Domain(
    name="vitals",
    router=_combined_router(),
    config_model=VitalsConfig,
    scopes={
        # The core registers vitals:read (cloud/api/scopes.py); the same description makes this idempotent.
        "vitals:read": ("personal health data (vitals) of the people wearing devices", True),
        "vitals:write": ("the vitals patient registry (pseudonym <-> person), care teams, visits and consents "
                         "recorded on a patient's behalf: /api/vitals registry routes", True),
    },
    jobs=JOBS,
)
