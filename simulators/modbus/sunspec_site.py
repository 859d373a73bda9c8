"""The Modbus simulator with chosen SunSpec models per unit, and the PV site (inverter + grid meter).

    sim = SunSpecSimulator(meters=2, models=(103, 802), port=0)      # units 1, 2: model 1 + 103 + 802
    site = PvSiteSimulator(port=0, kwp=250, site_load_kw=400, ev_power_w=feed)
    await site.start()          # unit 1: the PV inverter (1 + 103, or 1 + 113), unit 2: the grid meter (1 + 203)

Both are :class:`~simulators.modbus.ModbusSimulator`: same faults, connection drops,
request counts and refresh loop; only the register tables differ. Meter models (201-204)
serve the factory meter of the unit (``simulators.load``) or, in the site, the grid meter;
inverter models (103, 113, 701) a PV plant of ``kwp`` at Hitachi (``simulators.pv``); 802 a
battery of ``battery_kwh`` on a daily cycle.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from device_profiles.schema import RegisterFunction
from simulators.ev_feed import EvPowerFeed
from simulators.load import COMMISSIONED, EnergyIntegrator
from simulators.modbus.server import ModbusSimulator
from simulators.modbus.sunspec import SunSpecMeter, common_raw, decode_points, sunspec_map
from simulators.modbus.sunspec_devices import (SUPPORTED_MODELS, BatteryEncoder, DerMeasurementEncoder,
                                               InverterEncoder, battery_values)
from simulators.pv import PvSite, SimClock, SiteSnapshot, grid_meter_values, inverter_values, parse_start

METER_MODELS = (201, 202, 203, 204)
INVERTER_MODELS = (101, 102, 103, 111, 112, 113, 701)
YIELD_KWH_PER_KWP_DAY = 3.3          # ~1200 kWh/kWp a year in Ibaraki: the inverter's counter at start


def parse_models(text: str) -> tuple[int, ...]:
    """``"1,103,802"`` or ``"203"`` -> (103, 802): model 1 is always served first."""
    try:
        models = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"expected SunSpec model ids separated by commas such as 1,103, got {text!r}") from None
    models = tuple(m for m in models if m != 1)
    unknown = [m for m in models if m not in SUPPORTED_MODELS]
    if not models or unknown:
        raise ValueError(f"SunSpec models must be some of {', '.join(map(str, SUPPORTED_MODELS))} "
                         f"(model 1 is always served), got {text!r}")
    if sum(m in METER_MODELS for m in models) > 1 or sum(m in INVERTER_MODELS[:6] for m in models) > 1:
        raise ValueError(f"one meter model and one inverter model per unit at most, got {text!r}")
    return models


def _kwh(wh: float | None) -> float | None:
    return None if wh is None else wh / 1000          # an acc32 counter at 0 reads "not implemented"


class SunSpecSimulator(ModbusSimulator):
    """``meters`` units, each serving model 1 and ``models`` at ``sunspec_base``."""

    def __init__(self, meters: int = 1, models: tuple[int, ...] = (203,), port: int = 0, host: str = "127.0.0.1",
                 interval: float = 1.0, seed: int = 0, sunspec_base: int = 40000, kwp: float = 50.0,
                 battery_kwh: float = 100.0, cloudiness: float = 0.3, rtu: bool = False, baudrate: int = 19200,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(meters=meters, port=port, host=host, interval=interval, seed=seed, sunspec=True,
                         sunspec_base=sunspec_base, rtu=rtu, baudrate=baudrate, clock=clock)
        self.base, self.kwp, self.battery_kwh = sunspec_base, kwp, battery_kwh
        self.unit_models = {u: tuple(models) for u in self.units}
        self.plants = {u: PvSite(kwp, 0.0, seed * 1000 + u, cloudiness) for u in self.units}
        self._energy: dict[tuple[int, str], EnergyIntegrator] = {}
        self._model_points: dict[int, dict[int, dict]] = {}
        self._encoders: dict[int, dict[int, Callable[[dict], dict]]] = {u: self._make_encoders(u) for u in self.units}

    def _make_encoders(self, unit: int) -> dict[int, Callable[[dict], dict]]:
        encoders: dict[int, Callable[[dict], dict]] = {}
        for model_id in self.unit_models[unit]:
            if model_id in METER_MODELS:
                encoders[model_id] = SunSpecMeter(unit, self.base, self.seed, model_id).raw_points
            elif model_id == 701:
                encoders[model_id] = DerMeasurementEncoder(self.kwp).raw
            elif model_id == 802:
                encoders[model_id] = BatteryEncoder(self.battery_kwh).raw
            else:
                encoders[model_id] = InverterEncoder(self.kwp, model_id > 110, phases=model_id % 10).raw
        return encoders

    def _integrated(self, unit: int, name: str, power_w: float, t: float, start_kwh: float) -> float:
        integrator = self._energy.get((unit, name))
        if integrator is None:
            integrator = self._energy[(unit, name)] = EnergyIntegrator(start_kwh, t)
        return integrator.update(power_w, t)

    def _inverter(self, unit: int, site: SiteSnapshot, kwp: float) -> dict:
        values = inverter_values(site, kwp, self.seed)
        days = max(0.0, (site.t - COMMISSIONED) / 86400)
        values["energy_export"] = self._integrated(unit, "pv", site.pv_w, site.t, kwp * YIELD_KWH_PER_KWP_DAY * days)
        return values

    def role_values(self, unit: int, role: str, t: float) -> dict:
        """Physical values of one unit for its models of ``role`` (meter, inverter or battery)."""
        if role == "meter":
            return self.bank.values(unit)
        if role == "inverter":
            return self._inverter(unit, self.plants[unit].snapshot(t), self.kwp)
        return battery_values(t, self.battery_kwh)

    @staticmethod
    def role(model_id: int) -> str:
        return "meter" if model_id in METER_MODELS else "battery" if model_id == 802 else "inverter"

    def refresh(self, t: float | None = None) -> None:
        t = self.bank.refresh(t)
        self.before_refresh(t)
        for unit in self.units:
            roles = {self.role(m) for m in self.unit_models[unit]}
            values = {role: self.role_values(unit, role, t) for role in roles}
            raws = [(m, self._encoders[unit][m](values[self.role(m)])) for m in self.unit_models[unit]]
            common = common_raw("hinode", self.model_name(unit), f"HSS-{unit:05d}", unit)
            self._state[unit].tables = {RegisterFunction.HOLDING: sunspec_map(self.base, common, raws)}
            self._model_points[unit] = {m: decode_points(m, raw) for m, raw in raws}
            self._points[unit] = self._model_points[unit][self.unit_models[unit][0]]
            self._served[unit] = self._metrics(unit)
        self.refresh_count += 1

    def before_refresh(self, t: float) -> None:
        """Hook for state shared by all units (the site's power balance)."""

    def model_name(self, unit: int) -> str:
        return "SIM-" + "-".join(str(m) for m in self.unit_models[unit])

    def _metrics(self, unit: int) -> dict[str, object]:
        """The main quantities as a client decodes them, in the source's metric names."""
        out: dict[str, object] = {}
        for model_id, p in self._model_points[unit].items():
            if model_id in METER_MODELS:
                out.update({"power_total": p["W"], "power_factor": p["PF"] / 100, "frequency": p["Hz"],
                            "energy_import": _kwh(p["TotWhImp"]),
                            **{f"voltage_l{n}": p[f"PhVph{c}"] for n, c in zip((1, 2, 3), "ABC")},
                            **{f"current_l{n}": p[f"Aph{c}"] for n, c in zip((1, 2, 3), "ABC")},
                            **{f"power_l{n}": p[f"Wph{c}"] for n, c in zip((1, 2, 3), "ABC")}})
                if p["TotWhExp"] is not None:
                    out["energy_export"] = _kwh(p["TotWhExp"])
            elif model_id in (101, 102, 103, 111, 112, 113):
                out.update({"power_total": p["W"], "energy_export": _kwh(p["WH"]), "dc_power": p["DCW"],
                            "frequency": p["Hz"], "temperature_cabinet": p["TmpCab"],
                            **{f"voltage_l{n}": p[f"PhVph{c}"] for n, c in zip((1, 2, 3), "ABC")},
                            **{f"current_l{n}": p[f"Aph{c}"] for n, c in zip((1, 2, 3), "ABC")}})
            elif model_id == 802:
                out.update({"soc": p["SoC"], "battery_power": p["W"]})
        return out

    def sunspec_model_points(self, unit: int, model_id: int) -> dict[str, object]:
        """Scaled points of one of the unit's models (None = not implemented)."""
        self._check_unit(unit)
        return dict(self._model_points[unit][model_id])

    def describe(self) -> str:
        where = f"RTU on {self.client_port}" if self.rtu else f"TCP {self.host}:{self.port}"
        models = sorted({m for ms in self.unit_models.values() for m in ms})
        return (f"Modbus simulator: {self.meters} SunSpec units (unit ids 1..{self.meters}), models 1, "
                f"{', '.join(map(str, models))} at {self.base}, {where}, refresh {self.interval:g}s")


class PvSiteSimulator(SunSpecSimulator):
    """Unit 1: the site's PV inverter (1 + 103, or 1 + 113 with ``float_inverter``); unit 2: the grid meter (1 + 203).

    The grid meter measures ``load + ev - pv`` (import positive); its import and export
    counters integrate that power. ``ev_power_w`` (e.g. an :class:`~simulators.ev_feed.EvPowerFeed`)
    tells the chargers' total; ``site.snapshot`` is the last balance served.
    """

    INVERTER_UNIT, GRID_METER_UNIT = 1, 2

    def __init__(self, port: int = 0, host: str = "127.0.0.1", kwp: float = 250.0, site_load_kw: float = 400.0,
                 float_inverter: bool = False, ev_power_w: Callable[[], float] | None = None,
                 ev_feed: EvPowerFeed | None = None, seed: int = 0,
                 cloudiness: float = 0.3, interval: float = 1.0, sunspec_base: int = 40000,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(meters=2, models=(203,), port=port, host=host, interval=interval, seed=seed,
                         sunspec_base=sunspec_base, kwp=kwp, cloudiness=cloudiness, clock=clock)
        if ev_feed is not None and ev_power_w is not None:
            raise ValueError("give ev_power_w or ev_feed, not both")
        self.ev_feed = ev_feed                 # started and stopped with the simulator
        self.site = PvSite(kwp, site_load_kw, seed, cloudiness, ev_feed or ev_power_w)
        self.unit_models = {self.INVERTER_UNIT: (113 if float_inverter else 103,), self.GRID_METER_UNIT: (203,)}
        self._encoders = {u: self._make_encoders(u) for u in self.units}
        grid_rating_kw = max(site_load_kw, kwp) * 1.5          # room for the chargers on top
        self._encoders[self.GRID_METER_UNIT][203] = SunSpecMeter(self.GRID_METER_UNIT, self.base, seed, 203,
                                                                 rated_kw=grid_rating_kw).raw_points
        self.snapshot: SiteSnapshot | None = None

    def before_refresh(self, t: float) -> None:
        self.snapshot = self.site.snapshot(t)

    async def start(self) -> None:
        if self.ev_feed is not None:
            await self.ev_feed.start()
        try:
            await super().start()
        except Exception:
            await self.stop()
            raise

    async def stop(self) -> None:
        await super().stop()
        if self.ev_feed is not None:
            await self.ev_feed.stop()

    def model_name(self, unit: int) -> str:
        return "SIM-PV-INVERTER" if unit == self.INVERTER_UNIT else "SIM-GRID-METER"

    def role_values(self, unit: int, role: str, t: float) -> dict:
        site = self.snapshot
        if role == "inverter":
            return self._inverter(unit, site, self.site.kwp)
        values = grid_meter_values(site, self.seed)
        start = max(0.0, (t - COMMISSIONED) / 3600)
        values["energy_import"] = self._integrated(unit, "import", site.grid_w, t, 0.45 * self.site.site_load_kw * start)
        values["energy_export"] = self._integrated(unit, "export", -site.grid_w, t, 0.02 * self.site.kwp * start)
        return values

    def describe(self) -> str:
        inverter = self.unit_models[self.INVERTER_UNIT][0]
        feed = f", EV power over UDP {self.ev_feed.host}:{self.ev_feed.port}" if self.ev_feed else ""
        return (f"PV site simulator (Hitachi, {self.site.kwp:g} kWp, factory {self.site.site_load_kw:g} kW): "
                f"unit 1 PV inverter (SunSpec 1 + {inverter}), unit 2 grid meter (1 + 203) at {self.base}, "
                f"TCP {self.host}:{self.port}, refresh {self.interval:g}s{feed}")


def add_cli_options(parser) -> None:
    """The ``modbus`` sub-command's SunSpec model and PV site options (see simulators/README.md)."""
    parser.add_argument("--sunspec-models", type=_models_arg, metavar="IDS",
                        help="SunSpec models each unit serves after model 1, e.g. 203, 1,103 or 113,802 (implies --sunspec)")
    parser.add_argument("--pv-site", action="store_true",
                        help="serve the PV site instead of meters: unit 1 PV inverter (1 + 103), unit 2 grid meter (1 + 203)")
    parser.add_argument("--float-inverter", action="store_true", help="the site's inverter serves model 113 (float32)")
    parser.add_argument("--pv-kwp", type=float, default=None, help="PV plant peak power in kWp (site 250, per unit 50)")
    parser.add_argument("--site-load-kw", type=float, default=400.0, help="the factory's rated load in kW")
    parser.add_argument("--battery-kwh", type=float, default=100.0, help="battery capacity for model 802")
    parser.add_argument("--cloudiness", type=float, default=0.3, help="0 clear sky .. 1 overcast")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--start", type=parse_start_arg, default=None, metavar="ISO",
                        help="simulated start time, e.g. 2025-06-21T06:00 (Asia/Tokyo); default now")
    parser.add_argument("--ev-port", type=int, default=None, metavar="PORT",
                        help="PV site: UDP port on --host where the chargers' total power (W, text) is received")


def _models_arg(text: str) -> tuple[int, ...]:
    try:
        return parse_models(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_start_arg(text: str) -> float:
    try:
        return parse_start(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def simulator_from_args(args) -> SunSpecSimulator | None:
    """The SunSpec simulator the options ask for, or None when they ask for the plain meters."""
    if not (args.pv_site or args.sunspec_models):
        return None
    if args.rtu and args.pv_site:
        raise ValueError("--pv-site serves Modbus TCP only")
    clock = SimClock(args.start, args.time_scale)
    if args.pv_site:
        feed = None
        if args.ev_port is not None:
            feed = EvPowerFeed(port=args.ev_port, host=args.host)
        return PvSiteSimulator(port=args.port, host=args.host, kwp=args.pv_kwp or 250.0,
                               site_load_kw=args.site_load_kw, float_inverter=args.float_inverter, ev_feed=feed,
                               seed=args.seed, cloudiness=args.cloudiness, interval=args.interval,
                               sunspec_base=args.sunspec_base, clock=clock)
    return SunSpecSimulator(meters=args.meters, models=args.sunspec_models, port=args.port, host=args.host,
                            interval=args.interval, seed=args.seed, sunspec_base=args.sunspec_base,
                            kwp=args.pv_kwp or 50.0, battery_kwh=args.battery_kwh, cloudiness=args.cloudiness,
                            rtu=args.rtu, baudrate=args.baudrate, clock=clock)
