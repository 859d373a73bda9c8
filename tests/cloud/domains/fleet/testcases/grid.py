"""A local metric grid for hand-built routes: metres north/east of an origin <-> lat/lon, square zones.

Small distances on a sphere: 1 m north is 1/111,195 degree of latitude; 1 m east is that divided by
cos(latitude of the origin). Hand-computed answers use the same conversion, so a square of
``half`` metres has its edges exactly where the arithmetic says.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180      # 111,195.08 m


class Grid:
    def __init__(self, lat0: float = 36.5908, lon0: float = 140.6615):   # JR Hitachi, approximately
        self.lat0, self.lon0 = lat0, lon0
        self.m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(lat0))

    def point(self, north_m: float, east_m: float = 0.0) -> tuple[float, float]:
        """(lat, lon) of a point north_m / east_m from the origin."""
        return self.lat0 + north_m / M_PER_DEG_LAT, self.lon0 + east_m / self.m_per_deg_lon

    def ring(self, north_m: float, east_m: float, half_m: float) -> list[list[float]]:
        """A closed square ring ([lon, lat] pairs) of side 2*half_m centred at north_m / east_m."""
        corners = [(-half_m, -half_m), (-half_m, half_m), (half_m, half_m), (half_m, -half_m), (-half_m, -half_m)]
        return [[self.point(north_m + dn, east_m + de)[1], self.point(north_m + dn, east_m + de)[0]]
                for dn, de in corners]


def zone_feature(zone_id: str, kind: str, rings: list[list[list[float]]], **properties) -> dict:
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {"id": zone_id, "name": {"ja": zone_id, "en": zone_id}, "kind": kind, **properties}}


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}
