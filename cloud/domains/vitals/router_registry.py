"""/api/vitals registry routes for care-office staff (scope vitals:write): patients, care teams, visits,
and the gateway's schedule file. Every read and change is audited (without names)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from cloud.api import params
from cloud.domains.vitals.access import acting_user, audit, registry_of, require_write
from cloud.domains.vitals.registry import CARE_ROLES, RegistryError
from hinode.contract import ID_PATTERN

router = APIRouter()
SCHEDULE_ZONE = ZoneInfo("Asia/Tokyo")
Pseudonym = Annotated[str, Field(pattern=ID_PATTERN, description="the patient's pseudonym, e.g. p-7f3a9c")]
PersonName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NewPatient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pseudonym: Pseudonym
    name: str = Field(min_length=1, max_length=200)
    display_name: str = Field(min_length=1, max_length=100, description="what the nurse's page shows")
    birth_date: dt.date | None = None


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: PersonName = Field(description="the member's API principal name (token or user)")
    care_role: Literal[CARE_ROLES]  # type: ignore[valid-type]
    webhook_url: AnyHttpUrl | None = Field(default=None, description="where this member's alerts are posted")


class NewVisit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date
    time: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM local time")
    kit: str = Field(pattern=ID_PATTERN, description="the nurse's visit kit (the gateway's ble source kit)")
    pseudonym: Pseudonym
    nurse: PersonName


def registry_error(exc: RegistryError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _staff(request: Request) -> str:
    return acting_user(request)[0]


@router.post("/patients", status_code=201, dependencies=[Depends(require_write)],
             summary="Register a patient (pseudonym <-> person); vitals:write")
def create_patient(request: Request, patient: NewPatient) -> dict:
    registry = registry_of(request)
    try:
        created = registry.add_patient(patient.pseudonym, patient.name, patient.display_name,
                                       patient.birth_date.isoformat() if patient.birth_date else None)
    except RegistryError as exc:
        raise registry_error(exc) from None
    audit(request, patient.pseudonym, "patient_create")
    return created


@router.get("/registry", dependencies=[Depends(require_write)],
            summary="Every patient with name, birth date and care team; vitals:write")
def read_registry(request: Request) -> dict:
    registry = registry_of(request)
    patients = []
    for patient in registry.patients():
        patient["members"] = registry.members(patient["pseudonym"])
        patients.append(patient)
        audit(request, patient["pseudonym"], "registry_read")
    return {"patients": patients}


@router.post("/patients/{pseudonym}/members", status_code=201, dependencies=[Depends(require_write)],
             summary="Add a member to the patient's care team; vitals:write")
def add_member(request: Request, pseudonym: str, member: NewMember) -> dict:
    params.check_id("patient", pseudonym)
    try:
        added = registry_of(request).add_member(pseudonym, member.username, member.care_role, added_by=_staff(request),
                                                webhook_url=str(member.webhook_url) if member.webhook_url else None)
    except RegistryError as exc:
        raise registry_error(exc) from None
    audit(request, pseudonym, "member_add", care_role=member.care_role)
    return added


@router.delete("/patients/{pseudonym}/members/{member_id}", dependencies=[Depends(require_write)],
               summary="Remove a member from the care team (kept, marked removed); vitals:write")
def remove_member(request: Request, pseudonym: str, member_id: int) -> dict:
    params.check_id("patient", pseudonym)
    try:
        removed = registry_of(request).remove_member(pseudonym, member_id, removed_by=_staff(request))
    except RegistryError as exc:
        raise registry_error(exc) from None
    audit(request, pseudonym, "member_remove", care_role=removed["care_role"])
    return removed


@router.post("/visits", status_code=201, dependencies=[Depends(require_write)],
             summary="Schedule a nurse's visit (it goes into the kit's schedule file); vitals:write")
def add_visit(request: Request, visit: NewVisit) -> dict:
    try:
        added = registry_of(request).add_visit(visit.date.isoformat(), visit.time, visit.kit, visit.pseudonym,
                                               visit.nurse, created_by=_staff(request))
    except RegistryError as exc:
        raise registry_error(exc) from None
    audit(request, visit.pseudonym, "visit_add")
    return added


def render_schedule(visits: list[dict]) -> str:
    """The gateway's schedule file: ``visits: [{date, time, pseudonym, display_name}]``."""
    entries = [{"date": dt.date.fromisoformat(v["date"]), "time": v["time"], "pseudonym": v["pseudonym"],
                "display_name": v["display_name"]} for v in visits]
    return yaml.safe_dump({"visits": entries}, allow_unicode=True, sort_keys=False)


@router.get("/kits/{kit}/schedule.yaml", dependencies=[Depends(require_write)],
            summary="The day's schedule file for a visit kit's gateway (names included); vitals:write")
def kit_schedule(request: Request, kit: str,
                       date: dt.date | None = Query(None, description="YYYY-MM-DD; default today in Asia/Tokyo")
                       ) -> Response:
    params.check_id("kit", kit)
    day = date or dt.datetime.now(SCHEDULE_ZONE).date()
    visits = registry_of(request).visits(kit, day.isoformat())
    for pseudonym in sorted({v["pseudonym"] for v in visits}):
        audit(request, pseudonym, "schedule_read")
    return Response(render_schedule(visits), media_type="application/yaml; charset=utf-8",
                    headers={"Cache-Control": "no-store"})
