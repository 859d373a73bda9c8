"""The VisitBook on a real SQLite file: visits, held readings, the nurse's decisions, restarts,
exactly-once hand-over, purge, and the schedule file (reload and errors)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from edge_agent.sources.ble.measurement import Measurement, VitalValue
from edge_agent.sources.ble.schedule import ScheduledVisit, ScheduleError
from edge_agent.sources.ble.visits import DAY_MS, VisitBook, VisitError
from hinode.contract import is_id
from hinode.vitals import Category

TOKYO = dt.timezone(dt.timedelta(hours=9))
# 2026-11-29 23:30 in Tokyo is still 14:30 UTC: the visit id's date must be the kit's local date.
NOW = dt.datetime(2026, 11, 29, 23, 30, tzinfo=TOKYO).timestamp()


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def blood_pressure(systolic: float = 138.0) -> Measurement:
    return Measurement(category=Category.BLOOD_PRESSURE, characteristic=0x2A35,
                       values=(VitalValue("systolic", systolic, decimals=0), VitalValue("diastolic", 88.0, decimals=0),
                               VitalValue("mean_arterial", 120.0, decimals=0), VitalValue("pulse", 60.0, decimals=0)),
                       device_time=dt.datetime(2026, 11, 29, 23, 29), status=("irregular_pulse",))


def temperature_nan() -> Measurement:
    return Measurement(category=Category.TEMPERATURE, characteristic=0x2A1C,
                       values=(VitalValue("body_temp", None, absent="not-a-number"),))


SCHEDULE = [ScheduledVisit(dt.date(2026, 11, 29), "10:00", "p-7f3a9c", "山田 花子"),
            ScheduledVisit(dt.date(2026, 11, 29), "14:30", "p-19be02", "鈴木 一郎"),
            ScheduledVisit(dt.date(2026, 11, 30), "09:00", "p-7f3a9c", "山田 花子")]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def book_path(tmp_path):
    return tmp_path / "state" / "ble-visit-kit-visits.sqlite"


@pytest.fixture
def book(book_path, clock):
    book = VisitBook(book_path, "kit-01", SCHEDULE, clock)
    yield book
    book.close()


def offer_bp(book: VisitBook, systolic: float = 138.0):
    return book.offer("bp-cuff-1", "ble-blood_pressure", blood_pressure(systolic), int(NOW * 1000), "device")


def test_today_lists_the_local_days_schedule_in_time_order(book):
    today = book.today()
    assert [(v["time"], v["pseudonym"], v["display_name"], v["state"]) for v in today] == [
        ("10:00", "p-7f3a9c", "山田 花子", "scheduled"), ("14:30", "p-19be02", "鈴木 一郎", "scheduled")]


def test_visit_ids_use_the_kits_local_date_and_a_counter(book):
    first = book.start_visit("p-7f3a9c", "n-01")
    assert first.id == "v-kit-01-20261129-1" and is_id(first.id)
    assert first.display_name == "山田 花子" and first.active
    with pytest.raises(VisitError) as busy:
        book.start_visit("p-19be02", "n-01")
    assert busy.value.code == "active_visit" and first.id in busy.value.message
    book.end_visit(first.id, "n-01")
    second = book.start_visit("p-19be02", "n-01")
    assert second.id == "v-kit-01-20261129-2"
    states = {v["pseudonym"]: v["state"] for v in book.today()}
    assert states == {"p-7f3a9c": "ended", "p-19be02": "active"}


def test_offer_inside_a_visit_is_pending_and_outside_unassigned(book):
    outside = offer_bp(book, 120)
    assert outside.state == "unassigned" and outside.visit_id is None and outside.pseudonym is None
    visit = book.start_visit("p-7f3a9c", "n-01")
    inside = offer_bp(book, 138)
    assert (inside.state, inside.visit_id, inside.pseudonym) == ("pending", visit.id, "p-7f3a9c")
    assert [(r.id, r.state) for r in book.held()] == [(outside.id, "unassigned"), (inside.id, "pending")]
    assert book.take_confirmed() == []


def test_confirm_then_take_confirmed_carries_visit_and_pseudonym_exactly_once(book):
    visit = book.start_visit("p-7f3a9c", "n-01")
    held = offer_bp(book)
    assert book.changed.is_set()
    book.confirm(held.id, "n-01")
    [confirmed] = book.take_confirmed()
    assert (confirmed.id, confirmed.visit_id, confirmed.pseudonym, confirmed.device) == (
        held.id, visit.id, "p-7f3a9c", "bp-cuff-1")
    assert confirmed.measurement == blood_pressure()
    assert book.take_confirmed() == []           # handed over once in this process
    book.mark_forwarded([confirmed.id])
    book.mark_forwarded([confirmed.id])          # a second mark changes nothing
    assert book.take_confirmed() == [] and book.held() == []
    actions = [(a["action"], a["nurse"]) for a in book.audit_log(held.id)]
    assert actions == [("offer", "gateway"), ("confirmed", "n-01"), ("forward", "gateway")]


def test_discard_and_assign(book):
    stray = offer_bp(book, 111)
    stray_too = offer_bp(book, 112)
    visit = book.start_visit("p-7f3a9c", "n-02")
    book.discard(stray.id, "n-02")
    book.assign(stray_too.id, visit.id, "n-02")
    [pending] = book.held()
    assert (pending.id, pending.state, pending.visit_id, pending.pseudonym) == (
        stray_too.id, "pending", visit.id, "p-7f3a9c")
    with pytest.raises(VisitError) as not_unassigned:
        book.assign(stray_too.id, visit.id, "n-02")
    assert not_unassigned.value.code == "state"
    with pytest.raises(VisitError) as gone:
        book.confirm(stray.id, "n-02")
    assert gone.value.code == "state" and "discarded" in gone.value.message
    with pytest.raises(VisitError) as unknown:
        book.confirm("r-999", "n-02")
    assert unknown.value.code == "not_found"
    book.confirm(stray_too.id, "n-02")
    assert [(c.id, c.measurement.values[0].value) for c in book.take_confirmed()] == [(stray_too.id, 112.0)]
    assert [a["action"] for a in book.audit_log(stray.id)] == ["offer", "discarded"]
    assert [(a["action"], a["from_state"], a["to_state"]) for a in book.audit_log(stray_too.id)][1] == (
        "assign", "unassigned", "pending")


def test_an_unassigned_reading_is_never_handed_over(book):
    offer_bp(book)
    visit = book.start_visit("p-7f3a9c", "n-01")
    book.end_visit(visit.id, "n-01")
    assert book.take_confirmed() == [] and [r.state for r in book.held()] == ["unassigned"]


def test_ending_a_visit_with_pending_readings_is_refused_unless_discarding_them(book):
    visit = book.start_visit("p-7f3a9c", "n-01")
    first, second = offer_bp(book, 130), offer_bp(book, 131)
    book.confirm(first.id, "n-01")
    with pytest.raises(VisitError) as refused:
        book.end_visit(visit.id, "n-01")
    assert refused.value.code == "pending_readings" and [r.id for r in refused.value.pending] == [second.id]
    assert book.active() == book.visit(visit.id)
    book.end_visit(visit.id, "n-01", discard_pending=True)
    assert book.active() is None and book.held() == []
    assert [a["action"] for a in book.audit_log(second.id)] == ["offer", "discarded"]
    assert [c.id for c in book.take_confirmed()] == [first.id]


def test_unscheduled_visits_need_the_choice_and_a_valid_pseudonym(book):
    with pytest.raises(VisitError) as not_today:
        book.start_visit("p-000001", "n-01")
    assert not_today.value.code == "not_scheduled"
    with pytest.raises(VisitError) as bad:
        book.start_visit("山田さん", "n-01", unscheduled=True)
    assert bad.value.code == "bad_pseudonym"
    visit = book.start_visit("p-000001", "n-01", unscheduled=True)
    assert visit.unscheduled and visit.display_name == ""
    row = [v for v in book.today() if v["pseudonym"] == "p-000001"]
    assert row == [{"pseudonym": "p-000001", "display_name": "", "time": "23:30", "scheduled": False,
                    "state": "active", "visit_id": visit.id}]


def test_restart_keeps_the_active_visit_held_readings_and_unforwarded_confirmed(book_path, clock):
    book = VisitBook(book_path, "kit-01", SCHEDULE, clock)
    visit = book.start_visit("p-7f3a9c", "n-01")
    confirmed, pending = offer_bp(book, 140), offer_bp(book, 141)
    book.offer("thermo-1", "ble-temperature", temperature_nan(), int(NOW * 1000), "gateway")
    book.confirm(confirmed.id, "n-01")
    assert [c.id for c in book.take_confirmed()] == [confirmed.id]   # taken but never marked forwarded
    book.close()

    again = VisitBook(book_path, "kit-01", SCHEDULE, clock)
    try:
        assert again.active() == visit
        held = again.held()
        assert [(r.id, r.state) for r in held] == [(pending.id, "pending"), (held[1].id, "pending")]
        assert held[1].measurement == temperature_nan()
        [handed] = again.take_confirmed()
        assert (handed.id, handed.visit_id, handed.pseudonym) == (confirmed.id, visit.id, "p-7f3a9c")
        again.mark_forwarded([handed.id])
        assert again.take_confirmed() == []
        again.end_visit(visit.id, "n-01", discard_pending=True)
        assert again.start_visit("p-19be02", "n-01").id == "v-kit-01-20261129-2"
    finally:
        again.close()


def test_replace_held_keeps_one_waiting_reading_per_device(book):
    visit = book.start_visit("p-7f3a9c", "n-01")
    first = book.offer("hr-1", "ble-heart_rate", blood_pressure(100), 1, "gateway", replace_held=True)
    second = book.offer("hr-1", "ble-heart_rate", blood_pressure(101), 2, "gateway", replace_held=True)
    assert first.id == second.id
    [held] = book.held()
    assert (held.ts_ms, held.measurement.values[0].value, held.visit_id) == (2, 101.0, visit.id)


def test_purge_removes_old_forwarded_discarded_and_unclaimed_rows_only(book_path, clock):
    book = VisitBook(book_path, "kit-01", SCHEDULE, clock, keep_days=7)
    try:
        stray = offer_bp(book, 9)                                        # outside any visit: unassigned
        visit = book.start_visit("p-7f3a9c", "n-01")
        forwarded, discarded, kept = offer_bp(book, 1), offer_bp(book, 2), offer_bp(book, 3)
        book.confirm(forwarded.id, "n-01")
        book.mark_forwarded([c.id for c in book.take_confirmed()])
        book.discard(discarded.id, "n-01")
        clock.now += 6 * DAY_MS / 1000
        assert book.purge() == 0
        book.confirm(kept.id, "n-01")
        book.end_visit(visit.id, "n-01")
        clock.now += 2 * DAY_MS / 1000
        assert book.purge() == 3
        assert stray.id not in {h.id for h in book.held()}               # unclaimed for a week: gone
        assert [c.id for c in book.take_confirmed()] == [kept.id]       # confirmed, not forwarded: kept
        assert book.visit(visit.id).id == visit.id                       # still referenced by a reading
        assert [a["action"] for a in book.audit_log()][:1] == ["confirmed"]  # old audit rows gone
        book.mark_forwarded([kept.id])
        clock.now += 8 * DAY_MS / 1000
        assert book.purge() == 1
        with pytest.raises(VisitError):
            book.visit(visit.id)                                          # the ended visit is gone too
    finally:
        book.close()


def write_schedule(path: Path, text: str, bump_s: int = 0) -> None:
    path.write_text(text, encoding="utf-8")
    if bump_s:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump_s * 1_000_000_000))


def test_schedule_file_loads_and_reloads_when_it_changes(tmp_path, clock):
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, 'visits:\n  - {date: 2026-11-29, time: "10:00", pseudonym: p-7f3a9c, '
                             'display_name: "山田 花子"}\n')
    book = VisitBook(tmp_path / "book.sqlite", "kit-01", clock=clock, schedule_file=schedule)
    try:
        assert [v["display_name"] for v in book.today()] == ["山田 花子"]
        write_schedule(schedule, "kit: kit-01\nvisits:\n"
                                 "  - {date: 2026-11-29, time: 09:15, pseudonym: p-7f3a9c, display_name: 山田 花子}\n"
                                 "  - {date: 2026-11-29, time: '11:00', pseudonym: p-19be02, display_name: 鈴木 一郎}\n",
                       bump_s=2)
        assert [(v["time"], v["display_name"]) for v in book.today()] == [("09:15", "山田 花子"),
                                                                          ("11:00", "鈴木 一郎")]
        write_schedule(schedule, "visits:\n  - {date: 2026-11-29, pseudonym: 'bad name'}\n", bump_s=4)
        assert len(book.today()) == 2                        # the last good schedule stays
        assert str(schedule) in book.schedule_error and "visits[0].pseudonym" in book.schedule_error
    finally:
        book.close()


@pytest.mark.parametrize("text, key", [
    ("visits:\n  - {date: 2026-11-29, time: '25:00', pseudonym: p-1}\n", "visits[0].time"),
    ("visits:\n  - {date: 2026-13-01, pseudonym: p-1}\n", "visits[0].date"),
    ("visits:\n  - {date: 2026-11-29, pseudonym: p-1, name: x}\n", "visits[0].name"),
    ("visit: []\n", "visit"),
    ("kit: kit-02\nvisits: []\n", "kit"),
    ("visits: [\n", "not valid YAML"),
])
def test_a_broken_schedule_at_start_names_the_file_and_key(tmp_path, clock, text, key):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(text, encoding="utf-8")
    with pytest.raises(ScheduleError) as error:
        VisitBook(tmp_path / "book.sqlite", "kit-01", clock=clock, schedule_file=schedule)
    assert str(schedule) in str(error.value) and key in str(error.value)


def test_a_missing_schedule_file_allows_unscheduled_visits(tmp_path, clock):
    book = VisitBook(tmp_path / "book.sqlite", "kit-01", clock=clock, schedule_file=tmp_path / "none.yaml")
    try:
        assert book.today() == [] and "not found" in book.schedule_error
        assert book.start_visit("p-000001", "n-01", unscheduled=True).unscheduled
    finally:
        book.close()
