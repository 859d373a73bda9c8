"""Who may see which vital signs of which patient, checked against the registry on every request.

A person's role for a patient is their care role in that patient's care team. ``self`` and ``proxy``
always see everything of their own (consent id ``self``); every other role needs an active consent
for its care role covering the category at the time of the read. Nothing is cached: a revoked or
expired consent stops the next request. Every decision a route asks for is written to the audit log.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Iterable

from fastapi import HTTPException, Request

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains.vitals.registry import ALL_CATEGORIES, Registry, decode_categories, now_ms
from hinode.vitals import Category

SELF_ROLES = ("self", "proxy")
# Roles that see the patient's display name in /patients (family and Grafana users see pseudonyms only).
NAMED_ROLES = ("self", "proxy", "doctor", "nurse", "care_manager")
WRITE_SCOPE = "vitals:write"
_FORWARDED_USER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class Grant:
    """What ``user`` may see of ``pseudonym`` now: the union of the role's active consents."""

    pseudonym: str
    user: str
    care_role: str
    categories: frozenset[Category]
    consent_id: str                          # "self", or the ids of the consents in force, comma-separated
    valid_until_ms: int | None               # when the first of those consents ends (None: open-ended)
    consent_by_category: dict = field(default_factory=dict, compare=False, hash=False)

    def allows(self, category: Category | str) -> bool:
        return Category(category) in self.categories

    def consent_for(self, categories: Iterable[Category | str]) -> str:
        """The consent ids a read of these categories happens under, comma-separated."""
        ids = {self.consent_by_category.get(Category(c)) for c in categories}
        return ",".join(sorted(i for i in ids if i))


def registry_of(owner) -> Registry:
    """The app's registry (``owner``: the app or a request), opened on first use from ``domains.vitals``."""
    app = getattr(owner, "app", owner)
    state = app.state
    registry = getattr(state, "vitals_registry", None)
    if registry is None:
        with _registry_lock:
            registry = getattr(state, "vitals_registry", None)
            if registry is None:
                config = state.domain_configs["vitals"]
                registry = state.vitals_registry = Registry(config.resolved_registry_path())
    return registry


def acting_user(request: Request) -> tuple[str, str]:
    """(user name, via): the principal itself ("api"), or the Grafana user it forwards ("grafana").

    The forwarded-user header counts only from a principal listed in ``grafana.service_principals``
    (anyone else's header is ignored); such a principal without the header acts as nobody: 403.
    """
    cached = getattr(request.state, "vitals_actor", None)
    if cached is not None:
        return cached
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(403, "vital signs are personal data: they are served only with API authentication on")
    grafana = domain_config(request, "vitals").grafana
    if principal.name in grafana.service_principals:
        values = request.headers.getlist(grafana.user_header)
        if len(values) > 1:   # a query's own header next to the data source's: refuse rather than pick one
            raise HTTPException(403, f"the {grafana.user_header} header was sent {len(values)} times; "
                                     f"a Grafana request names exactly one user")
        forwarded = values[0].strip() if values else ""
        if not _FORWARDED_USER.fullmatch(forwarded):
            raise HTTPException(403, f"{principal.name!r} is a Grafana service principal: it acts only for the "
                                     f"signed-in Grafana user named in the {grafana.user_header} header, and this "
                                     f"request names none (the data source sets it: X-Grafana-User: ${{__user.login}}, see "
                                     f"cloud/domains/vitals/README.md, Boards)")
        actor = (forwarded, "grafana")
    else:
        actor = (principal.name, "api")
    request.state.vitals_actor = actor
    return actor


def is_staff(request: Request) -> bool:
    """Care-office staff: the principal holds vitals:write and acts for itself (not through Grafana)."""
    principal = getattr(request.state, "principal", None)
    return principal is not None and WRITE_SCOPE in principal.scopes and acting_user(request)[1] == "api"


async def require_write(request: Request) -> None:
    """Route dependency: scope vitals:write (401/403 from the authenticator), never through Grafana."""
    await request.app.state.auth.require_scope(WRITE_SCOPE)(request)
    if acting_user(request)[1] != "api":
        raise HTTPException(403, "registry changes are not made through Grafana")


require_write.required_scope = WRITE_SCOPE   # seen by the route walk (cloud/api/auth.py routes_and_scopes)


def grant_for(registry: Registry, user: str, pseudonym: str, at_ms: int) -> Grant | None:
    """None when ``user`` is not in the patient's care team or no consent for their role is in force."""
    member = registry.member(pseudonym, user)
    if member is None:
        return None
    role = member["care_role"]
    if role in SELF_ROLES:
        return Grant(pseudonym, user, role, ALL_CATEGORIES, "self", None, {c: "self" for c in ALL_CATEGORIES})
    consents = registry.active_consents(pseudonym, role, at_ms)
    if not consents:
        return None
    by_category: dict[Category, str] = {}
    for consent in consents:
        for category in decode_categories(consent["categories"]):
            by_category.setdefault(category, consent["id"])
    ends = [c["valid_until_ms"] for c in consents if c["valid_until_ms"] is not None]
    return Grant(pseudonym, user, role, frozenset(by_category), ",".join(c["id"] for c in consents),
                 min(ends) if ends else None, by_category)


def patients_visible_to(registry: Registry, user: str, at_ms: int) -> list[Grant]:
    """A grant per patient whose care team ``user`` is in and of whom consent lets them see something."""
    grants = (grant_for(registry, user, m["pseudonym"], at_ms) for m in registry.memberships(user))
    return [g for g in grants if g is not None]


def _why_not(registry: Registry, pseudonym: str, role: str, categories: Iterable[Category], at_ms: int) -> str:
    """A hint why a consent that would cover the categories is not in force (revoked, expired, not yet)."""
    wanted = set(categories) or set(ALL_CATEGORIES)
    for consent in reversed(registry.consents(pseudonym)):
        if consent["care_role"] != role or not wanted & decode_categories(consent["categories"]):
            continue
        if consent["revoked_ms"] is not None:
            return f" (consent {consent['id']} was revoked)"
        if consent["valid_until_ms"] is not None and consent["valid_until_ms"] <= at_ms:
            return f" (consent {consent['id']} expired)"
        if consent["valid_from_ms"] > at_ms:
            return f" (consent {consent['id']} is not valid yet)"
    return ""


def audit(request: Request, pseudonym: str, action: str, *, outcome: str = "allowed",
          categories: Iterable[Category | str] | str = (), consent_id: str = "", care_role: str = "",
          reason: str = "") -> int:
    """One audit row for the acting user (no values, no names)."""
    user, via = acting_user(request)
    return registry_of(request).append_audit(actor=user, via=via, care_role=care_role, pseudonym=pseudonym,
                                             action=action, categories=categories, consent_id=consent_id,
                                             outcome=outcome, reason=reason)


def require_grant(request: Request, pseudonym: str, action: str,
                  categories: Iterable[Category | str] | None = None, *, audit_allowed: bool = True) -> Grant:
    """The acting user's grant, or 403 with the reason; the decision is audited.

    ``categories`` None: any category the grant covers will do (the audit row lists all of them);
    given: every one of them must be covered. With ``audit_allowed`` False the caller audits an allowed
    read itself (e.g. with the categories it actually returned).
    """
    params.check_id("patient", pseudonym)
    user, _ = acting_user(request)
    registry = registry_of(request)
    at_ms = now_ms()
    wanted = frozenset(Category(c) for c in categories) if categories is not None else None
    grant = grant_for(registry, user, pseudonym, at_ms)
    if grant is None:
        member = registry.member(pseudonym, user)
        if member is None:
            role, reason = "", "not in the care team of this patient"
        else:
            role = member["care_role"]
            what = ", ".join(sorted(wanted)) if wanted else "any vital sign"
            reason = f"no consent for role {role} to see {what}" + _why_not(registry, pseudonym, role,
                                                                              wanted or (), at_ms)
        audit(request, pseudonym, action, outcome="denied", categories=wanted or (), care_role=role, reason=reason)
        raise HTTPException(403, reason)
    if wanted is not None and not wanted <= grant.categories:
        missing = sorted(wanted - grant.categories)
        reason = (f"no consent for role {grant.care_role} to see {', '.join(missing)}"
                  + _why_not(registry, pseudonym, grant.care_role, missing, at_ms))
        audit(request, pseudonym, action, outcome="denied", categories=wanted, care_role=grant.care_role,
              consent_id=grant.consent_for(wanted & grant.categories), reason=reason)
        raise HTTPException(403, reason)
    if audit_allowed:
        read = wanted if wanted is not None else grant.categories
        audit(request, pseudonym, action, categories=read, care_role=grant.care_role,
              consent_id=grant.consent_for(read))
    return grant
