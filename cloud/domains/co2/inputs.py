"""Monthly inputs (bills, fuel deliveries, production): checking entries and reading CSV/Excel files.
Pure (bytes in, frames and row errors out); columns and rules in README.md ("Inputs")."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from cloud.domains.co2.accounting import INPUT_SCHEMA
from cloud.domains.co2.config import Co2Site
from cloud.domains.co2.factors import FactorSet, to_fuel_unit

KINDS = ("electricity", "fuel", "production")
ELECTRICITY_UNITS = {"kWh": 1.0, "kwh": 1.0, "MWh": 1000.0, "mwh": 1000.0}
_ITEM = re.compile(r"^[A-Za-z0-9_.\-]{1,64}(/[A-Za-z0-9_.\-]{1,64})?$")
_MONTH_PATTERNS = (re.compile(r"^(\d{4})[-/.](\d{1,2})(?:[-/.]\d{1,2})?$"), re.compile(r"^(\d{4})年(\d{1,2})月"))
MAX_ROWS = 5000

# Normalised header (lower case, no spaces/brackets content kept) -> field. Japanese headers accepted.
HEADERS = {
    "kind": "kind", "種別": "kind", "区分": "kind",
    "item": "item", "品目": "item", "燃料": "item", "燃料種別": "item", "契約": "item",
    "month": "month", "年月": "month", "対象月": "month", "使用月": "month",
    "amount": "amount", "使用量": "amount", "使用量(kwh)": "amount", "数量": "amount", "kwh": "amount",
    "生産量": "amount",
    "unit": "unit", "単位": "unit",
    "cost_yen": "cost_yen", "cost": "cost_yen", "金額": "cost_yen", "金額(円)": "cost_yen", "料金": "cost_yen",
    "料金(円)": "cost_yen", "請求額": "cost_yen", "請求額(円)": "cost_yen",
}


class InputFileError(ValueError):
    """A file that cannot be read at all (not CSV/xlsx, no header, unknown columns)."""


@dataclass(frozen=True)
class RowError:
    row: int
    reason: str

    def as_dict(self) -> dict:
        return {"row": self.row, "reason": self.reason}


def normalise_month(value) -> str:
    if isinstance(value, (datetime, date)) and 2000 <= value.year <= 2100:
        return f"{value.year:04d}-{value.month:02d}"
    text = str(value).strip()
    for pattern in _MONTH_PATTERNS:
        match = pattern.match(text)
        if match and 1 <= int(match.group(2)) <= 12 and 2000 <= int(match.group(1)) <= 2100:
            return f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"
    raise ValueError(f"month {text!r} is not a month (expected YYYY-MM, 2025/04 or 2025年4月, years 2000-2100)")


def _number(name: str, value, required: bool) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        number = float(str(value).replace(",", "").replace("¥", "").replace("円", "").strip())
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if number != number or number < 0 or number > 1e12:
        raise ValueError(f"{name} {value!r} must be a number from 0 to 1e12")
    return number


def check_entry(raw: dict, site: Co2Site, factors: FactorSet) -> dict:
    """One entry as stored (amount in the fuel's own unit); ValueError naming the field and what was expected."""
    kind = str(raw.get("kind") or "").strip()
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
    month = normalise_month(raw.get("month") if raw.get("month") is not None else "")
    amount = _number("amount", raw.get("amount"), True)
    cost = _number("cost_yen", raw.get("cost_yen"), False)
    unit = str(raw.get("unit") or "").strip()
    item = str(raw.get("item") or "").strip()
    if kind == "electricity":
        item = item or f"{site.retailer}/{site.menu}"
        if "/" not in item:
            item = f"{item}/standard"
        unit = unit or "kWh"
        if unit not in ELECTRICITY_UNITS:
            raise ValueError(f"unit {unit!r} does not fit electricity (expected kWh or MWh)")
        amount, unit = amount * ELECTRICITY_UNITS[unit], "kWh"
    elif kind == "fuel":
        try:
            fuel = factors.fuel(item)
        except KeyError as exc:
            raise ValueError(f"item: {exc.args[0]}") from None
        amount = to_fuel_unit(fuel, amount, unit or fuel.unit)
        unit = fuel.unit
    else:
        unit = unit or item or site.production_unit or ""
        item = item or unit
        if not item:
            raise ValueError("production needs its unit (item or unit, e.g. t or pcs)")
        if site.production_unit and item != site.production_unit:
            raise ValueError(f"production unit {item!r} differs from the site's production_unit "
                             f"{site.production_unit!r}")
    if not _ITEM.fullmatch(item):
        raise ValueError(f"item {item!r} must be letters, digits, _ . - (electricity: retailer/menu)")
    return {"site": site.id, "kind": kind, "item": item, "month": month, "amount": amount, "unit": unit,
            "cost_yen": cost}


def check_entries(rows: list[tuple[int, dict]], site: Co2Site, factors: FactorSet, source: str,
                  entered_by: str) -> tuple[pl.DataFrame, list[RowError]]:
    """Good rows as an INPUT_SCHEMA frame (the last of duplicates wins) and one error per bad row."""
    good, errors = [], []
    for number, raw in rows:
        try:
            good.append({**check_entry(raw, site, factors), "source": source, "entered_by": entered_by})
        except ValueError as exc:
            errors.append(RowError(number, str(exc)))
    frame = pl.DataFrame(good, schema=INPUT_SCHEMA) if good else pl.DataFrame(schema=INPUT_SCHEMA)
    frame = frame.unique(subset=["site", "kind", "item", "month"], keep="last", maintain_order=True)
    return frame, errors


def _field(header) -> str | None:
    text = re.sub(r"\s+", "", str(header or "")).lower().replace("（", "(").replace("）", ")")
    return HEADERS.get(text) or HEADERS.get(re.sub(r"\(.*\)$", "", text))


def _rows_from_table(table: list[list], defaults: dict) -> list[tuple[int, dict]]:
    """Row number (1 = header, as a spreadsheet shows it) -> raw entry."""
    if not table:
        raise InputFileError("the file is empty")
    fields = [_field(h) for h in table[0]]
    unknown = [str(h) for h, f in zip(table[0], fields) if f is None and str(h or "").strip()]
    if unknown:
        raise InputFileError(f"unknown column(s) {', '.join(map(repr, unknown))} (expected: kind/種別, item/品目, "
                           "month/年月, amount/使用量(kWh), unit/単位, cost_yen/金額(円))")
    for needed in ("month", "amount"):
        if needed not in fields:
            raise InputFileError(f"no {needed} column (e.g. {'年月' if needed == 'month' else '使用量(kWh)'})")
    header_unit = "kWh" if any("kwh" in str(h).lower() for h in table[0]) else None
    out = []
    for index, cells in enumerate(table[1:], start=2):
        if all(c is None or str(c).strip() == "" for c in cells):
            continue
        raw = dict(defaults)
        if header_unit and "unit" not in fields:
            raw.setdefault("unit", header_unit)
        for field, cell in zip(fields, cells):
            if field is not None and cell is not None and str(cell).strip() != "":
                raw[field] = cell
        out.append((index, raw))
        if len(out) > MAX_ROWS:
            raise InputFileError(f"more than {MAX_ROWS} rows; split the file")
    return out


def read_table(content: bytes, filename: str, defaults: dict) -> list[tuple[int, dict]]:
    """Rows of a CSV (UTF-8, with or without BOM, or Shift_JIS) or an .xlsx (first sheet)."""
    if content[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        from openpyxl import load_workbook
        try:
            sheet = load_workbook(io.BytesIO(content), read_only=True, data_only=True).worksheets[0]
        except Exception as exc:   # openpyxl raises many types for a damaged file
            raise InputFileError(f"{filename}: not a readable .xlsx file ({type(exc).__name__})") from None
        return _rows_from_table([list(row) for row in sheet.iter_rows(values_only=True)], defaults)
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InputFileError(f"{filename}: neither UTF-8 nor Shift_JIS text")
    return _rows_from_table([row for row in csv.reader(io.StringIO(text))], defaults)
