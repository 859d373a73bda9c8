"""Roadmap: reduction measures evaluated on a site's own 30-minute load, roadmaps to FY2030/2050
and their comparison (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.roadmap.config import RoadmapConfig
from cloud.domains.roadmap.router import router

DOMAIN = Domain(
    name="roadmap",
    router=router,
    config_model=RoadmapConfig,
    scopes={"roadmap:read": ("reduction measures, roadmaps and their comparison: /api/roadmap/*", False),
            "roadmap:write": ("save roadmaps: POST /api/roadmap/roadmaps", False)},
)
