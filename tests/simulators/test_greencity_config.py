"""What ``hinode up`` writes for the green-city domains (hinode/up_greencity.py): sections every installed
domain accepts (``python -m cloud check-config``), the bills of the unmetered factory, and the range."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import date, datetime

import pytest
import yaml

from hinode.up_greencity import (GREENCITY_DOMAINS, JST, domain_sections, history_start_ms, machining_inputs,
                                 usable_sections)


def installed(name: str) -> bool:
    try:
        return hasattr(importlib.import_module(f"cloud.domains.{name}"), "DOMAIN")
    except ImportError:
        return False


@pytest.mark.parametrize("with_plant", [True, False])
def test_the_written_config_passes_check_config(tmp_path, with_plant):
    kept, problems = usable_sections(domain_sections("edge-01", with_plant))
    if with_plant:                                      # the full file, as the cloud reads it (once: slow)
        path = tmp_path / "cloud.yaml"
        path.write_text(yaml.safe_dump({"domains": kept}, allow_unicode=True))
        done = subprocess.run([sys.executable, "-m", "cloud", "check-config", str(path)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    for name in GREENCITY_DOMAINS:
        if not with_plant and name == "interchange":
            assert name not in kept                     # no producer without the PV plant
        elif installed(name):
            # an installed domain must accept the demo's section: a wrong key fails here, not silently
            assert name in kept, problems
        else:
            assert any(name in p for p in problems)


def test_the_sites_and_the_community_are_the_designs():
    sections = domain_sections()
    co2 = {s["id"]: s for s in sections["co2"]["sites"]}
    assert set(co2) == {"hitachi-omika", "sme-press", "sme-plating", "sme-food", "city-hall-annex", "sme-machining"}
    assert co2["sme-machining"]["grid_meters"] == []
    assert all(s["baseline_fy"] == 2013 and s["baseline_t_co2"] > 0 for s in co2.values())
    (community,) = sections["interchange"]["communities"]
    roles = {p["site"]: p["role"] for p in community["participants"]}
    assert roles == {"hitachi-omika": "producer", "sme-press": "consumer", "sme-plating": "consumer",
                     "sme-food": "consumer", "city-hall-annex": "consumer"}


def test_thirteen_months_of_bills_and_winter_kerosene():
    entries = machining_inputs(date(2026, 11, 29))
    months = sorted({e["month"] for e in entries})
    assert months[0] == "2025-10" and months[-1] == "2026-10" and len(months) == 13
    electricity = [e for e in entries if e["kind"] == "electricity"]
    assert len(electricity) == 13 and all(e["unit"] == "kWh" and e["cost_yen"] > 0 for e in electricity)
    kerosene = sorted(e["month"] for e in entries if e["item"] == "kerosene")
    assert kerosene == ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    assert len([e for e in entries if e["item"] == "city_gas_13a"]) == 13


def test_the_history_starts_on_the_first_of_the_month_a_year_ago():
    now = int(datetime(2026, 11, 29, 3, 0, tzinfo=JST).timestamp() * 1000)
    assert history_start_ms(now) == int(datetime(2025, 11, 1, tzinfo=JST).timestamp() * 1000)
