"""/api/vitals consent and audit routes: the patient (self), their proxy and care-office staff grant and revoke
consents and read who saw the patient's data. Revocation acts on the next request (nothing is cached)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud.api import params
from cloud.domains.vitals.access import SELF_ROLES, acting_user, audit, is_staff, registry_of
from cloud.domains.vitals.registry import RegistryError, decode_categories
from hinode.vitals import Category

router = APIRouter()


class NewConsent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    care_role: Literal["family", "doctor", "nurse", "care_manager"]
    categories: list[Category] | Literal["all"] = Field(description="the categories this role may see, or 'all' "
                                                                    "(also categories added later)")
    valid_from: AwareDatetime | None = Field(default=None, description="default: now")
    valid_until: AwareDatetime | None = Field(default=None, description="default: until revoked")


def _ms(value: AwareDatetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def consent_view(consent: dict) -> dict:
    return {"id": consent["id"], "care_role": consent["care_role"],
            "categories": "all" if consent["categories"] == "all"
            else sorted(c.value for c in decode_categories(consent["categories"])),
            "valid_from": consent["valid_from_ms"], "valid_until": consent["valid_until_ms"],
            "granted_by": consent["granted_by"], "granted_at": consent["granted_ms"],
            "revoked_at": consent["revoked_ms"], "revoked_by": consent["revoked_by"]}


def require_consent_holder(request: Request, pseudonym: str, action: str) -> str:
    """The care role acting (self, proxy or "staff"), or 403 (audited): only the patient, their proxy and
    vitals:write staff see and change a patient's consents and audit log, and never through Grafana."""
    params.check_id("patient", pseudonym)
    user, via = acting_user(request)
    member = registry_of(request).member(pseudonym, user)
    if via == "api" and member is not None and member["care_role"] in SELF_ROLES:
        return member["care_role"]
    if is_staff(request):
        return "staff"
    role = member["care_role"] if member else ""
    reason = ("only the patient, their proxy and care-office staff (vitals:write) may do this"
              + ("" if via == "api" else ", and not through Grafana"))
    audit(request, pseudonym, action, outcome="denied", care_role=role, reason=reason)
    raise HTTPException(403, reason)


@router.get("/patients/{pseudonym}/consents", summary="The patient's consents (self, proxy, vitals:write staff)")
def list_consents(request: Request, pseudonym: str) -> dict:
    role = require_consent_holder(request, pseudonym, "consent_read")
    consents = registry_of(request).consents(pseudonym)
    audit(request, pseudonym, "consent_read", care_role=role)
    return {"patient": pseudonym, "consents": [consent_view(c) for c in consents]}


@router.post("/patients/{pseudonym}/consents", status_code=201,
             summary="Grant a care role access to categories, from/until (self, proxy, vitals:write staff)")
def grant_consent(request: Request, pseudonym: str, consent: NewConsent) -> dict:
    role = require_consent_holder(request, pseudonym, "consent_grant")
    user, _ = acting_user(request)
    try:
        granted = registry_of(request).grant_consent(
            pseudonym, consent.care_role, consent.categories, granted_by=user,
            valid_from_ms=_ms(consent.valid_from), valid_until_ms=_ms(consent.valid_until))
    except RegistryError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    audit(request, pseudonym, "consent_grant", care_role=role, consent_id=granted["id"],
          categories=granted["categories"], reason=f"for role {consent.care_role}")
    return consent_view(granted)


@router.post("/patients/{pseudonym}/consents/{consent_id}/revoke",
             summary="Revoke a consent at once: the next request of that role is refused (self, proxy, staff)")
def revoke_consent(request: Request, pseudonym: str, consent_id: str) -> dict:
    role = require_consent_holder(request, pseudonym, "consent_revoke")
    user, _ = acting_user(request)
    try:
        revoked = registry_of(request).revoke_consent(pseudonym, consent_id, revoked_by=user)
    except RegistryError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    audit(request, pseudonym, "consent_revoke", care_role=role, consent_id=consent_id,
          categories=revoked["categories"], reason=f"for role {revoked['care_role']}")
    return consent_view(revoked)


@router.get("/patients/{pseudonym}/audit",
            summary="Who read or changed what of this patient's data, when, under which consent (newest first)")
def read_audit(request: Request, pseudonym: str,
                     limit: int = Query(500, ge=1, le=10_000, description="rows at most, newest first")) -> dict:
    role = require_consent_holder(request, pseudonym, "read_audit")
    rows = registry_of(request).audit_rows(pseudonym, limit=limit)
    audit(request, pseudonym, "read_audit", care_role=role)
    return {"patient": pseudonym, "entries": [
        {"id": r["id"], "ts": r["ts_ms"], "who": r["actor"], "via": r["via"], "care_role": r["care_role"],
         "action": r["action"], "categories": [c for c in r["categories"].split(",") if c],
         "consent_id": r["consent_id"], "outcome": r["outcome"], "reason": r["reason"]} for r in rows]}
