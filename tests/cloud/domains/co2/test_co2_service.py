"""The co2 domain's pure functions with hand-checked numbers (the arithmetic is next to each value)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from cloud.domains._greencity.calendar import SLOT_MS, month_range_ms
from cloud.domains._greencity.energy import MeterRef
from cloud.domains.co2 import accounting, inputs, summary
from cloud.domains.co2.config import Co2Config
from cloud.domains.co2.factors import FactorFileError, load_factors, to_fuel_unit
from tests.cloud.domains.co2.factor_files import write_factor_dir

BIG_NOW = 10**15      # every slot of the test months has ended


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def energy(site: str, starts: list[int], kwh: float = 1.0, device: str = "main-meter") -> pl.DataFrame:
    return pl.DataFrame([(site, device, "energy_import", t, kwh, 3) for t in starts],
                        schema={"site": pl.String, "device": pl.String, "metric": pl.String, "slot_start": pl.Int64,
                                "kwh": pl.Float64, "readings": pl.Int64}, orient="row")


def config(retailer: str = "testco", meters: bool = True, **extra) -> Co2Config:
    site = {"id": "p", "retailer": retailer, "grid_meters": [{"device": "main-meter"}] if meters else [], **extra}
    return Co2Config.model_validate({"sites": [site]})


def month_figures(cfg: Co2Config, factors, month: str, slot_energy: pl.DataFrame, entries: list[dict] = ()):
    site = cfg.site("p")
    start, end = month_range_ms(month)
    years = [2023, 2024, 2025]
    slots = accounting.slot_co2(accounting.site_slots(slot_energy, site.meters(), start, end) if site.grid_meters
                                else accounting.site_slots(slot_energy, [], 0, 0),
                                accounting.factor_table(cfg, site, factors, years))
    frame, errors = inputs.check_entries(list(enumerate(entries, 1)), site, factors, "api", "test")
    assert errors == []
    rows = summary.monthly([month], slots, accounting.billed(frame, cfg, site, factors),
                           accounting.fuel_kg(frame, factors), accounting.production(frame),
                           {month: accounting.slots_in_month(month, BIG_NOW)}, bool(site.grid_meters))
    return rows.row(0, named=True)


@pytest.fixture(scope="module")
def sample_factors(tmp_path_factory):
    return load_factors(write_factor_dir(tmp_path_factory.mktemp("factors")))


def test_fuel_factors_are_heat_value_times_carbon_times_44_over_12():
    factors = load_factors()
    gas = factors.fuel("city_gas_13a")
    # 40.0 GJ/千m3 x 0.0140 tC/GJ x 44/12 x 1000 = 0.56 tC x 3.6667 x 1000 = 2053.33 kg-CO2 per 千m3
    assert gas.kg_co2_per_unit == pytest.approx(2053.333, abs=1e-3)
    # kerosene: 36.7 x 0.0185 x 44/12 x 1000 = 0.67895 x 3.6667 x 1000 = 2489.48 kg per kL
    assert factors.fuel("kerosene").kg_co2_per_unit == pytest.approx(2489.483, abs=1e-3)
    assert to_fuel_unit(gas, 1000.0, "m3") == pytest.approx(1.0)          # 1,000 m3 = 1 千m3
    with pytest.raises(ValueError, match="unit 'kL' does not fit fuel 'city_gas_13a'"):
        to_fuel_unit(gas, 1.0, "kL")
    with pytest.raises(KeyError, match="unknown fuel 'coal'"):
        factors.fuel("coal")


def test_a_fuel_line_is_scope_1(sample_factors):
    row = month_figures(config(meters=False), sample_factors, "2024-05", energy("p", []), [
        {"kind": "fuel", "item": "city_gas_13a", "month": "2024-05", "amount": 1000, "unit": "m3"},
        {"kind": "fuel", "item": "kerosene", "month": "2024-05", "amount": 2000, "unit": "L"}])
    # 1,000 m3 gas: 1.0 x 2053.333 = 2053.333 kg; 2,000 L kerosene: 2.0 x 2489.483 = 4978.967 kg
    assert row["scope1_kg"] == pytest.approx(2053.333 + 4978.967, abs=1e-2)
    assert row["electricity_source"] == "none" and row["total_kg"] is None and row["completeness"] == 0.0


def test_an_electricity_month_with_basic_and_adjusted_factors(sample_factors):
    start, end = month_range_ms("2024-05")
    row = month_figures(config(), sample_factors, "2024-05", energy("p", list(range(start, end, SLOT_MS)), kwh=2.0))
    # May 2024 (FY2024 -> FY2023 results): 31 days x 48 slots x 2.0 kWh = 2976 kWh
    assert row["kwh"] == pytest.approx(2976.0) and row["completeness"] == 1.0 and not row["incomplete"]
    assert row["scope2_market_kg"] == pytest.approx(2976 * 0.450)    # 1339.2 kg (adjusted)
    assert row["scope2_basic_kg"] == pytest.approx(2976 * 0.400)     # 1190.4 kg (basic)
    assert row["scope2_location_kg"] == pytest.approx(2976 * 0.440)  # 1309.44 kg (national average)
    assert row["total_kg"] == pytest.approx(1339.2)


def test_march_and_april_slots_use_their_own_fiscal_years_factor(sample_factors):
    cfg = config()
    site = cfg.site("p")
    march_last, april_first = ms("2025-03-31T23:30:00+09:00"), ms("2025-04-01T00:00:00+09:00")
    slots = accounting.site_slots(energy("p", [march_last, april_first], kwh=10.0), site.meters(),
                                  march_last, april_first + SLOT_MS)
    out = accounting.slot_co2(slots, accounting.factor_table(cfg, site, sample_factors, [2024, 2025]))
    # FY2024 slot -> FY2023 results: 10 x 0.450 = 4.5; FY2025 slot -> FY2024 results: 10 x 0.350 = 3.5
    assert out["fiscal_year"].to_list() == [2024, 2025]
    assert out["kg_market"].to_list() == pytest.approx([4.5, 3.5])
    assert out["kg_basic"].to_list() == pytest.approx([4.0, 3.0])


def test_a_month_with_a_gap_is_incomplete_not_zero(sample_factors):
    start, end = month_range_ms("2024-06")
    starts = [t for t in range(start, end, SLOT_MS) if not (start + 48 * SLOT_MS <= t < start + 96 * SLOT_MS)]
    row = month_figures(config(), sample_factors, "2024-06", energy("p", starts))
    # June: 30 x 48 = 1440 slots, one day (48) missing -> 1392 kWh, completeness 1392/1440 = 0.9667
    assert row["kwh"] == pytest.approx(1392.0)
    assert row["completeness"] == pytest.approx(1392 / 1440) and row["incomplete"]
    assert row["electricity_source"] == "meters"


def test_bills_for_a_site_without_meters_and_the_meters_win_when_complete(sample_factors):
    bill = [{"kind": "electricity", "month": "2024-06", "amount": 1000, "cost_yen": 31000}]
    no_meter = month_figures(config(meters=False), sample_factors, "2024-06", energy("p", []), bill)
    # 1000 kWh x 0.450 = 450 kg market, x 0.400 = 400 kg basic; a bill covers its whole month
    assert (no_meter["kwh"], no_meter["electricity_source"], no_meter["completeness"]) == (1000.0, "bill", 1.0)
    assert no_meter["scope2_market_kg"] == pytest.approx(450.0) and no_meter["cost_yen"] == 31000.0
    start, end = month_range_ms("2024-06")
    complete = month_figures(config(), sample_factors, "2024-06", energy("p", list(range(start, end, SLOT_MS))), bill)
    assert (complete["kwh"], complete["electricity_source"], complete["kwh_billed"]) == (1440.0, "meters", 1000.0)
    gappy = month_figures(config(), sample_factors, "2024-06", energy("p", list(range(start, end, SLOT_MS))[1:]), bill)
    assert (gappy["kwh"], gappy["electricity_source"], gappy["kwh_metered"]) == (1000.0, "bill", 1439.0)


def test_intensity_and_the_fiscal_year_roll_up(sample_factors):
    row = month_figures(config(meters=False, production_unit="t"), sample_factors, "2024-06", energy("p", []), [
        {"kind": "electricity", "month": "2024-06", "amount": 1000},
        {"kind": "production", "item": "t", "month": "2024-06", "amount": 90}])
    assert row["intensity_kg_per_unit"] == pytest.approx(450 / 90)       # 5.0 kg-CO2 per t


def test_the_target_line_and_the_baseline():
    line = {p["fy"]: p["t_co2"] for p in summary.target_line(2013, 100.0)}
    # FY2020: 100 - 46 x 7/17 = 81.06; FY2030: 54; FY2040: 54 - 54 x 10/20 = 27; FY2050: 0
    assert line[2013] == 100.0 and line[2020] == pytest.approx(81.0588, abs=1e-3)
    assert (line[2030], line[2040], line[2050]) == (pytest.approx(54.0), pytest.approx(27.0), 0.0)
    assert summary.baseline(pl.DataFrame(), 2013, 120.0) == {"fy": 2013, "t_co2": 120.0, "source": "configured"}


def test_the_city_counts_incomplete_sites():
    full = pl.DataFrame({"period": ["2024-04"], "total_kg": [2000.0], "completeness": [1.0], "slots": [1440]})
    gappy = pl.DataFrame({"period": ["2024-04"], "total_kg": [500.0], "completeness": [0.5], "slots": [1440]})
    schema = summary.MONTH_ROW_SCHEMA
    def rows(frame):
        return frame.with_columns(*[pl.lit(None).cast(t).alias(c) for c, t in schema.items()
                                    if c not in frame.columns]).select(list(schema)).cast(schema)
    body = summary.city(2024, {"a": rows(full), "b": rows(gappy)})
    assert (body["sites"], body["sites_complete"], body["t_co2"]) == (2, 1, pytest.approx(2.5))
    assert body["months"][0] == {"period": "2024-04", "t_co2": pytest.approx(2.5), "sites_reporting": 2}


def test_a_broken_factor_file_names_the_file_and_key(tmp_path):
    broken = write_factor_dir(tmp_path, "version: x\nretrieved: y\nretailers:\n  default:\n    name: d\n"
                                        "    menus:\n      standard:\n        - {results_fy: 2023, "
                                        "adjusted_kg_per_kwh: -1, source: s}\n")
    with pytest.raises(FactorFileError, match=r"electricity.yaml: retailers.default.menus.standard.0."
                                              r"adjusted_kg_per_kwh: Input should be greater than or equal to 0"):
        load_factors(broken)


def test_unpublished_years_use_the_latest_earlier_and_unknown_retailers_the_default(sample_factors):
    later = sample_factors.electricity("testco", "standard", 2027)
    assert later.adjusted_kg_per_kwh == 0.350 and "FY2024 results used" in later.note
    unknown = sample_factors.electricity("nobody", "standard", 2025)
    assert (unknown.retailer, unknown.adjusted_kg_per_kwh) == ("default", 0.500) and "nobody" in unknown.note
    own = config(own_factor={"basic_kg_per_kwh": 0.45, "adjusted_kg_per_kwh": 0.44}).site("p").factor(sample_factors, 2025)
    assert (own.basic_kg_per_kwh, own.adjusted_kg_per_kwh) == (0.45, 0.44)


def test_the_shipped_files_load_and_ship_no_unverified_value():
    factors = load_factors()
    assert factors.electricity("default", "standard", 2025).adjusted_kg_per_kwh is None
    assert factors.location(2025).adjusted_kg_per_kwh is None
    kyuden = factors.electricity("kyuden", "standard", 2023)
    assert (kyuden.basic_kg_per_kwh, kyuden.adjusted_kg_per_kwh) == (0.399, 0.453) and kyuden.source


def test_csv_with_japanese_headers_and_bad_rows(sample_factors):
    site = config(meters=False).site("p")
    content = ("年月,使用量(kWh),金額(円)\n2025/04,\"1,200\",36000\n2025年5月,abc,1\n2025-13,5,\n2025-06,900,\n"
               ).encode("utf-8")
    rows = inputs.read_table(content, "bills.csv", {"kind": "electricity"})
    frame, errors = inputs.check_entries(rows, site, sample_factors, "csv:bills.csv", "t")
    assert frame.select("month", "amount", "item", "cost_yen").rows() == [
        ("2025-04", 1200.0, "testco/standard", 36000.0), ("2025-06", 900.0, "testco/standard", None)]
    assert [(e.row, e.reason) for e in errors] == [
        (3, "amount 'abc' is not a number"),
        (4, "month '2025-13' is not a month (expected YYYY-MM, 2025/04 or 2025年4月, years 2000-2100)")]
    with pytest.raises(inputs.InputFileError, match="unknown column"):
        inputs.read_table("年月,謎\n2025-04,1\n".encode(), "x.csv", {})


def test_site_slots_show_a_slot_without_data_as_null(sample_factors):
    cfg = config()
    start = ms("2024-05-01T00:00:00+09:00")
    slots = accounting.site_slots(energy("p", [start]), [MeterRef("p", "main-meter")], start, start + 2 * SLOT_MS)
    assert slots.select("kwh", "meters_expected", "meters_measured").rows() == [(1.0, 1, 1), (None, 1, 0)]
    assert cfg.site("p").meters() == [MeterRef("p", "main-meter", "energy_import")]


def test_recompute_lines_equal_the_job_points():
    from cloud.domains.co2.jobs import slot_lines, slot_points
    from cloud.points import encode_points
    frame = pl.DataFrame({"site": ["a", "a"], "slot_start": [1, 2], "kwh": [2.0, None], "kg_location": [0.88, None],
                          "kg_market": [0.9, None], "kg_basic": [0.8, None], "meters_expected": [1, 1],
                          "meters_measured": [1, 0]})
    def parsed(line):
        head, fields, ts = line.split(" ")
        return head, dict(f.split("=") for f in fields.split(",")), ts
    points = encode_points(slot_points(frame))
    points = points.decode() if isinstance(points, bytes) else points
    expected = [parsed(x) for x in (points.splitlines() if isinstance(points, str) else points)]
    assert [parsed(x) for x in slot_lines(frame)] == expected
    assert expected[1] == ("co2_slot,site=a", {"meters_expected": "1i", "meters_measured": "0i"}, "2")


def test_config_errors_name_the_key():
    from cloud.config import CloudConfig, CloudConfigError
    from cloud.domains import check_domain_configs
    from cloud.domains.co2 import DOMAIN
    typo = CloudConfig.model_validate({"domains": {"co2": {"sites": [
        {"id": "a", "grid_meters": [{"device": "m", "metirc": "energy_import"}]}]}}})
    with pytest.raises(CloudConfigError, match=r"cloud.yaml: domains.co2.sites.0.grid_meters.0.metirc: "
                                               r"Extra inputs are not permitted"):
        check_domain_configs(typo, "cloud.yaml", domains=[DOMAIN])
    twice = CloudConfig.model_validate({"domains": {"co2": {"sites": [{"id": "a"}, {"id": "a"}]}}})
    with pytest.raises(CloudConfigError, match=r"domains.co2.sites: .*site 'a' is configured twice"):
        check_domain_configs(twice, "cloud.yaml", domains=[DOMAIN])


def test_the_bulk_path_for_many_sites_equals_the_per_site_path(sample_factors):
    """recompute and the co2.slots job use sites_slot_co2 (one pass for every site); a site page uses
    site_slots + slot_co2. Both must give the same rows: gaps, a second meter and a fiscal-year edge."""
    cfg = Co2Config.model_validate({"sites": [
        {"id": "p", "retailer": "testco", "grid_meters": [{"device": "main-meter"}, {"device": "hall-b"}]},
        {"id": "q", "retailer": "testco", "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.4},
         "grid_meters": [{"device": "main-meter"}]},
        {"id": "bills-only"}]})
    start = ms("2025-03-31T22:00:00+09:00")        # four slots across the FY2024/FY2025 boundary
    starts = [start + i * SLOT_MS for i in range(8)]
    slot_energy = pl.concat([
        energy("p", starts, 2.0), energy("p", starts[:3], 1.0, device="hall-b"),     # hall-b stops after 3
        energy("q", starts[:2] + starts[4:], 3.0),                                    # q has a 2-slot gap
        energy("q", starts, 9.0, device="not-configured")])
    bulk = accounting.sites_slot_co2(slot_energy, cfg, sample_factors, start, start + 8 * SLOT_MS)
    per_site = pl.concat([
        accounting.slot_co2(accounting.site_slots(slot_energy, site.meters(), start, start + 8 * SLOT_MS),
                            accounting.factor_table(cfg, site, sample_factors, [2024, 2025]))
        for site in cfg.sites if site.grid_meters]).select(bulk.columns).sort("site", "slot_start")
    assert bulk.to_dicts() == per_site.to_dicts()
    q = bulk.filter(pl.col("site") == "q")
    assert q["kwh"].to_list() == [3.0, 3.0, None, None, 3.0, 3.0, 3.0, 3.0]          # a gap is null, never 0
    assert q["kg_market"].to_list()[:2] == [pytest.approx(1.2)] * 2                   # 3 kWh x 0.4
    assert bulk.filter(pl.col("site") == "p")["meters_measured"].to_list() == [2, 2, 2, 1, 1, 1, 1, 1]
