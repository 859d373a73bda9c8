"""CSV and Excel exports of summary rows and the city aggregate, and the printable monthly report (HTML)."""

from __future__ import annotations

import csv
import html
import io

from openpyxl import Workbook

SUMMARY_COLUMNS = ("period", "kwh", "kwh_metered", "kwh_billed", "electricity_source", "scope1_kg",
                   "scope2_location_kg", "scope2_market_kg", "scope2_basic_kg", "total_kg", "completeness",
                   "production", "intensity_kg_per_unit", "cost_yen")
CITY_COLUMNS = ("period", "t_co2", "sites_reporting")
CITY_SITE_COLUMNS = ("site", "t_co2", "completeness")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def table_csv(rows: list[dict], columns: tuple[str, ...], preamble: list[tuple[str, object]] = ()) -> str:
    """``key,value`` preamble lines would break parsers: the context goes into leading columns instead."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = [k for k, _ in preamble]
    writer.writerow([*keys, *columns])
    for row in rows:
        writer.writerow([*(v for _, v in preamble), *("" if row.get(c) is None else row.get(c) for c in columns)])
    return out.getvalue()


def table_xlsx(sheets: list[tuple[str, list[dict], tuple[str, ...]]], preamble: list[tuple[str, object]] = ()) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, rows, columns in sheets:
        sheet = book.create_sheet(title[:31])
        keys = [k for k, _ in preamble]
        sheet.append([*keys, *columns])
        for row in rows:
            sheet.append([*(v for _, v in preamble), *(row.get(c) for c in columns)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _num(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def monthly_report_html(site: dict, month: str, row: dict, last_year: dict | None, factor: dict,
                        location: dict) -> str:
    """A self-contained printable page (inline CSS, A4) with Japanese and English labels."""
    e = html.escape
    def change(key):
        if not last_year or last_year.get(key) in (None, 0) or row.get(key) is None:
            return "—"
        return f"{(row[key] / last_year[key] - 1) * 100:+.1f} %"
    lines = [
        ("電力使用量 / Electricity", "kWh", "kwh", 1),
        ("うち計測 / metered", "kWh", "kwh_metered", 1),
        ("うち請求書 / billed", "kWh", "kwh_billed", 1),
        ("Scope 1 (燃料 / fuels)", "kg-CO2", "scope1_kg", 1),
        ("Scope 2 ロケーション基準 / location-based", "kg-CO2", "scope2_location_kg", 1),
        ("Scope 2 マーケット基準 (調整後) / market-based (adjusted)", "kg-CO2", "scope2_market_kg", 1),
        ("Scope 2 基礎排出係数 / basic factor", "kg-CO2", "scope2_basic_kg", 1),
        ("合計 (Scope 1 + 2 マーケット) / total", "kg-CO2", "total_kg", 1),
        ("生産量 / production", site.get("production_unit") or "", "production", 1),
        ("原単位 / intensity", f"kg-CO2/{site.get('production_unit') or 'unit'}", "intensity_kg_per_unit", 3),
    ]
    body = "\n".join(
        f"<tr><th>{e(label)}</th><td class=num>{_num(row.get(key), digits)}</td><td>{e(unit)}</td>"
        f"<td class=num>{_num((last_year or {}).get(key), digits)}</td><td class=num>{change(key)}</td></tr>"
        for label, unit, key, digits in lines)
    flag = ("" if not row.get("incomplete") else
            "<p class=warn>データ欠損あり: 数値は計測できた分のみです / Data gaps: the figures cover the measured "
            "part only (never filled with zeros).</p>")
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>CO2 月報 / monthly report {e(site['id'])} {e(month)}</title>
<style>
body {{ font-family: "Noto Sans JP", "Hiragino Sans", "Yu Gothic", sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; margin-bottom: 0.2em; }} table {{ border-collapse: collapse; width: 100%; margin: 1em 0; }}
th, td {{ border: 1px solid #999; padding: 0.3em 0.5em; text-align: left; }} td.num {{ text-align: right; white-space: nowrap; }}
thead th:nth-child(2) {{ white-space: nowrap; }}
.warn {{ color: #a00; font-weight: bold; }} .meta {{ color: #555; font-size: 0.9em; }}
@media print {{ @page {{ size: A4; margin: 15mm; }} body {{ margin: 0; }} a {{ color: inherit; }} }}
</style></head><body>
<h1>CO2 排出量 月報 / Monthly CO2 report</h1>
<p>事業所 / Site: <strong>{e(site.get('name') or site['id'])}</strong> ({e(site['id'])}) &nbsp;
対象月 / Month: <strong>{e(month)}</strong></p>
<p>データ充足率 / Completeness: <strong>{_pct(row.get('completeness'))}</strong> &nbsp;
電力の出所 / Electricity from: <strong>{e(str(row.get('electricity_source')))}</strong></p>
{flag}
<table><thead><tr><th>項目 / Item</th><th>{e(month)}</th><th>単位 / Unit</th>
<th>前年同月 / Same month last year</th><th>増減 / Change</th></tr></thead>
<tbody>
{body}
</tbody></table>
<h2>排出係数 / Emission factors</h2>
<table><tbody>
<tr><th>小売電気事業者 / Retailer</th><td>{e(str(factor.get('retailer')))} / {e(str(factor.get('menu')))}</td></tr>
<tr><th>基礎排出係数 / basic</th><td>{_num(factor.get('basic_kg_per_kwh'), 3)} kg-CO2/kWh</td></tr>
<tr><th>調整後排出係数 / adjusted</th><td>{_num(factor.get('adjusted_kg_per_kwh'), 3)} kg-CO2/kWh</td></tr>
<tr><th>出典 / Source</th><td>{e(str(factor.get('source') or '—'))}</td></tr>
<tr><th>注記 / Note</th><td>{e(str(factor.get('note') or ''))}</td></tr>
<tr><th>全国平均 (ロケーション基準) / national average</th><td>{_num(location.get('adjusted_kg_per_kwh'), 3)}
 kg-CO2/kWh — {e(str(location.get('source') or '—'))}</td></tr>
</tbody></table>
<p class=meta>Scope 2 = kWh × 係数 / factor; Scope 1 = 量 × 単位発熱量 × 炭素排出係数 × 44/12.
欠損データはゼロとして扱いません / gaps are never counted as zero.</p>
</body></html>
"""
