"""``dashboards.render``: Grafana's substitutions, and every English board drawn from a real InfluxDB 1.x
with the demo data (which also runs every panel's query: a failing one is an error here)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from PIL import Image

from dashboards import demo
from dashboards.render import Influx, grafana_time, interval_for, panel_range, render_all, substitute

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 29, 23, 10, 5, tzinfo=JST)


def test_relative_times_like_grafana():
    assert grafana_time("now", NOW) == NOW
    assert grafana_time("now/d", NOW) == datetime(2026, 11, 29, tzinfo=JST)
    assert grafana_time("now-30d/d", NOW) == datetime(2026, 10, 30, tzinfo=JST)
    assert grafana_time("now-6h", NOW) == datetime(2026, 11, 29, 17, 10, 5, tzinfo=JST)
    assert grafana_time("now/w", NOW) == datetime(2026, 11, 23, tzinfo=JST)           # Monday
    assert grafana_time("now/fy", NOW, fiscal_start_month=3) == datetime(2026, 4, 1, tzinfo=JST)
    march = datetime(2027, 3, 31, 12, tzinfo=JST)
    assert grafana_time("now/fy", march, fiscal_start_month=3) == datetime(2026, 4, 1, tzinfo=JST)


def test_panel_time_from_and_shift():
    board = {"time": {"from": "now-6h", "to": "now"}}
    start, end = panel_range(board, {"timeFrom": "now/d", "timeShift": "7d"}, NOW)
    assert start == datetime(2026, 11, 22, tzinfo=JST) and end == datetime(2026, 11, 22, 23, 10, 5, tzinfo=JST)
    assert panel_range(board, {"timeFrom": "24h"}, NOW)[0] == datetime(2026, 11, 28, 23, 10, 5, tzinfo=JST)


def test_interval_and_variables_like_grafana():
    start = datetime(2026, 11, 29, tzinfo=timezone.utc)
    assert interval_for(start, start.replace(hour=6)) == "2m"
    assert interval_for(start, start.replace(day=30)) == "10m"
    q = substitute('SELECT mean("p") FROM "meter" WHERE "site" =~ /^$site$/ AND "device" =~ /^$device$/ '
                   'AND time > now() - $offline_after AND $timeFilter GROUP BY time($__interval)',
                   {"site": ["plant-a"], "device": ["pm.1", "pm-2"], "offline_after": ["5m"]},
                   start, start.replace(hour=1), "30s")
    assert '"site" =~ /^plant\\-a$/' in q
    assert '"device" =~ /^(pm\\.1|pm\\-2)$/' in q
    assert "now() - 5m" in q and "GROUP BY time(30s)" in q
    assert f"time >= {int(start.timestamp() * 1000)}ms and time <= {int(start.timestamp() * 1000) + 3600000}ms" in q


def test_every_english_board_renders_from_demo_data(influx, tmp_path):
    now = datetime.now(timezone.utc)
    assert demo.write_demo_data(influx.url, now=now) > 10000
    written, errors = render_all(Influx(influx.url, demo.DATABASE), tmp_path, ("en",), now)
    assert errors == []
    from dashboards.catalog import all_dashboards
    assert sorted(p.stem for p in written) == sorted(uid for uid in all_dashboards() if uid.endswith("-en"))
    for path in written:
        assert path.stat().st_size < 300_000, path
        with Image.open(path) as image:
            assert image.width == 1600 and image.height > 600
