"""Toy domain (worked example, tests only): the peak of a gauge per 10-minute slot.

Discovered because the test passes ``domain_packages=("tests.cloud.domains.toy_domain",)``;
shipped domains live in cloud/domains/ and need no such argument.
"""

from cloud.domains import Domain
from cloud.scheduler import Job

from .config import ToyConfig
from .jobs import write_peaks
from .public import lifespan, public_router
from .router import router

DOMAIN = Domain(
    name="toy",
    router=router,                                            # served under /api/toy/...
    config_model=ToyConfig,                                   # domains.toy in cloud.yaml
    scopes={"toy:read": ("peaks of a gauge per 10 minutes: /api/toy/*", False)},
    jobs=[Job("toy.peaks", every_s=600, run=write_peaks, delay_s=0)],
    public_router=public_router,                              # served without authentication under /public/toy/
    lifespan=lifespan,                                        # a worker running while the services run
)
