"""A small road graph of Hitachi City for the fleet simulator.

Nodes are the JR Joban line stations, bus stops on Route 6, the factories along it and the
hillside estates 2-3 km inland (west). Edges are roads drawn as short polylines. Every
coordinate is approximate (read off a map by eye, good to ~100 m): enough for vehicles to move
plausibly between real places and through the shipped zones, not for navigation. JR Hitachi's node
is the west exit, outside the concourse (a no-ride zone), and the road from it to Route 6 runs south
of Heiwa-dori (no riding for e-scooters), so ordinary trips keep the fleet domain's rules.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2: 0 = north, clockwise."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` north and ``east_m`` east of (lat, lon) (small distances)."""
    dlat = north_m / EARTH_RADIUS_M
    dlon = east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


@dataclass(frozen=True)
class Node:
    id: str
    kind: str            # station | bus_stop | factory | estate
    lat: float
    lon: float
    name_en: str
    name_ja: str


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    points: tuple[tuple[float, float], ...]     # (lat, lon) from a to b, ends included
    length_m: float


# (id, kind, lat, lon, English name, Japanese name)
NODES: tuple[Node, ...] = tuple(Node(*row) for row in (
    ("st-ogitsu", "station", 36.6306, 140.6811, "JR Ogitsu Station", "JR小木津駅"),
    ("st-hitachi", "station", 36.5900, 140.6608, "JR Hitachi Station", "JR日立駅"),
    ("st-taga", "station", 36.5423, 140.6402, "JR Hitachi-Taga Station", "JR常陸多賀駅"),
    ("st-omika", "station", 36.5086, 140.6283, "JR Omika Station", "JR大甕駅"),
    ("bs-r6-ogitsu", "bus_stop", 36.6270, 140.6740, "Route 6 Ogitsu", "国道6号 小木津"),
    ("bs-r6-jujigai", "bus_stop", 36.6050, 140.6560, "Route 6 Juji-gai", "国道6号 十字街"),
    ("bs-r6-hitachi", "bus_stop", 36.5895, 140.6525, "Route 6 Hitachi Shiyakusho", "国道6号 日立市役所"),
    ("bs-r6-kaigan", "bus_stop", 36.5760, 140.6500, "Route 6 Kaigan-guchi", "国道6号 海岸口"),
    ("bs-r6-nishikawa", "bus_stop", 36.5600, 140.6440, "Route 6 Nishikawa", "国道6号 西河原"),
    ("bs-r6-taga", "bus_stop", 36.5420, 140.6330, "Route 6 Taga", "国道6号 多賀"),
    ("bs-r6-kuji", "bus_stop", 36.5250, 140.6270, "Route 6 Kuji", "国道6号 久慈"),
    ("bs-r6-omika", "bus_stop", 36.5090, 140.6210, "Route 6 Omika", "国道6号 大甕"),
    ("fa-yamate", "factory", 36.5990, 140.6460, "Yamate works", "山手工場"),
    ("fa-kaigan", "factory", 36.5810, 140.6640, "Kaigan works", "海岸工場"),
    ("fa-taga", "factory", 36.5520, 140.6470, "Taga works", "多賀工場"),
    ("fa-omika", "factory", 36.5170, 140.6350, "Omika works", "大みか工場"),
    ("es-ogitsu-hills", "estate", 36.6310, 140.6500, "Ogitsu hills estate", "小木津台団地"),
    ("es-suwa", "estate", 36.6050, 140.6300, "Suwa estate", "諏訪団地"),
    ("es-kanesawa", "estate", 36.5930, 140.6330, "Kanesawa estate", "金沢団地"),
    ("es-takasuzu", "estate", 36.5720, 140.6250, "Takasuzu estate", "高鈴団地"),
    ("es-nakanarusawa", "estate", 36.5560, 140.6180, "Naka-narusawa estate", "中成沢団地"),
    ("es-omika-dai", "estate", 36.5150, 140.6000, "Omika-dai estate", "大みか台団地"),
))

# (a, b, intermediate (lat, lon) bends of the road)
_ROADS: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...] = (
    # Route 6, north to south
    ("bs-r6-ogitsu", "bs-r6-jujigai", ((36.6170, 140.6660),)),
    ("bs-r6-jujigai", "bs-r6-hitachi", ((36.5985, 140.6540),)),
    ("bs-r6-hitachi", "bs-r6-kaigan", ((36.5840, 140.6520),)),
    ("bs-r6-kaigan", "bs-r6-nishikawa", ((36.5680, 140.6470),)),
    ("bs-r6-nishikawa", "bs-r6-taga", ((36.5510, 140.6390),)),
    ("bs-r6-taga", "bs-r6-kuji", ((36.5335, 140.6300),)),
    ("bs-r6-kuji", "bs-r6-omika", ((36.5170, 140.6240),)),
    # station roads
    ("st-ogitsu", "bs-r6-ogitsu", ((36.6290, 140.6775),)),
    ("st-hitachi", "bs-r6-hitachi", ((36.5898, 140.6570),)),
    ("st-hitachi", "fa-kaigan", ((36.5860, 140.6630),)),
    ("st-taga", "bs-r6-taga", ((36.5422, 140.6365),)),
    ("st-taga", "fa-taga", ((36.5470, 140.6440),)),
    ("st-omika", "bs-r6-omika", ((36.5088, 140.6245),)),
    ("st-omika", "fa-omika", ((36.5130, 140.6320),)),
    # factories
    ("fa-yamate", "bs-r6-jujigai", ((36.6020, 140.6510),)),
    ("fa-yamate", "bs-r6-hitachi", ((36.5950, 140.6500),)),
    ("fa-kaigan", "bs-r6-kaigan", ((36.5790, 140.6570),)),
    ("fa-taga", "bs-r6-nishikawa", ((36.5560, 140.6455),)),
    ("fa-omika", "bs-r6-kuji", ((36.5210, 140.6310),)),
    # up the hills to the estates
    ("es-ogitsu-hills", "bs-r6-ogitsu", ((36.6300, 140.6600),)),
    ("es-ogitsu-hills", "es-suwa", ((36.6180, 140.6390),)),
    ("es-suwa", "bs-r6-jujigai", ((36.6050, 140.6430),)),
    ("es-kanesawa", "bs-r6-hitachi", ((36.5925, 140.6440),)),
    ("es-kanesawa", "es-suwa", ((36.5990, 140.6310),)),
    ("es-takasuzu", "bs-r6-kaigan", ((36.5740, 140.6380),)),
    ("es-takasuzu", "es-kanesawa", ((36.5830, 140.6290),)),
    ("es-nakanarusawa", "bs-r6-nishikawa", ((36.5580, 140.6310),)),
    ("es-nakanarusawa", "es-takasuzu", ((36.5640, 140.6210),)),
    ("es-omika-dai", "bs-r6-omika", ((36.5120, 140.6100),)),
    ("es-omika-dai", "es-nakanarusawa", ((36.5350, 140.6080),)),
)


def _polyline_length(points) -> float:
    return sum(haversine_m(*points[i], *points[i + 1]) for i in range(len(points) - 1))


@dataclass
class World:
    """The graph with shortest paths; ``edge_cost`` lets a caller steer routes away from zones."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[str, list[Edge]] = field(default_factory=dict)       # node id -> edges leaving it
    edge_cost: dict[tuple[str, str], float] = field(default_factory=dict)   # multiplier per (a, b)

    @classmethod
    def hitachi(cls) -> "World":
        world = cls(nodes={n.id: n for n in NODES})
        for a, b, bends in _ROADS:
            na, nb = world.nodes[a], world.nodes[b]
            forward = ((na.lat, na.lon), *bends, (nb.lat, nb.lon))
            length = _polyline_length(forward)
            world.edges.setdefault(a, []).append(Edge(a, b, forward, length))
            world.edges.setdefault(b, []).append(Edge(b, a, tuple(reversed(forward)), length))
        return world

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def bounds(self, margin_deg: float = 0.0) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon) of every road point, widened by ``margin_deg``."""
        lats = [p[0] for es in self.edges.values() for e in es for p in e.points]
        lons = [p[1] for es in self.edges.values() for e in es for p in e.points]
        return min(lats) - margin_deg, min(lons) - margin_deg, max(lats) + margin_deg, max(lons) + margin_deg

    def route(self, start: str, end: str) -> list[tuple[float, float]]:
        """The (lat, lon) polyline of the cheapest path from node ``start`` to node ``end`` (Dijkstra)."""
        if start == end:
            node = self.nodes[start]
            return [(node.lat, node.lon)]
        best = {start: 0.0}
        came: dict[str, Edge] = {}
        queue = [(0.0, start)]
        while queue:
            cost, here = heapq.heappop(queue)
            if here == end:
                break
            if cost > best.get(here, math.inf):
                continue
            for edge in self.edges.get(here, ()):
                through = cost + edge.length_m * self.edge_cost.get((edge.a, edge.b), 1.0)
                if through < best.get(edge.b, math.inf):
                    best[edge.b] = through
                    came[edge.b] = edge
                    heapq.heappush(queue, (through, edge.b))
        if end not in came:
            raise ValueError(f"no road from {start} to {end}")
        path: list[Edge] = []
        here = end
        while here != start:
            path.append(came[here])
            here = came[here].a
        points: list[tuple[float, float]] = [path[-1].points[0]]
        for edge in reversed(path):
            points.extend(edge.points[1:])
        return points
