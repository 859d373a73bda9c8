"""Access scopes, one or two per domain (``<domain>:read``, ``<domain>:write``).

Every route outside the public list depends on ``Authenticator.require_scope(<scope>)``
(cloud/api/auth.py). A principal (static token, user, issued token) holds either the defaults of
its role (``scopes_for_role``) or exactly the scopes listed for it in ``api.auth``.

A **personal** scope (health data such as vitals) is never part of a role's defaults: it is
registered with ``roles=()`` and granted only by listing it explicitly, and it is refused when
API authentication is off.

Domains register their scopes when their module is imported (module level), so that they are
known before ``create_app`` checks the configured scope names.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

SCOPE_NAME = re.compile(r"^[a-z][a-z0-9_]*:(read|write)$")
ROLES = ("viewer", "admin")

_registry: dict[str, "Scope"] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Scope:
    name: str
    description: str
    personal: bool
    roles: frozenset[str]


def register_scope(name: str, description: str, *, personal: bool = False,
                   roles: tuple[str, ...] = ("viewer", "admin")) -> Scope:
    """Register a scope (idempotent when identical); ValueError for a bad or conflicting one."""
    if not isinstance(name, str) or not SCOPE_NAME.match(name):
        raise ValueError(f"scope name {name!r} must look like 'domain:read' or 'domain:write' "
                         f"({SCOPE_NAME.pattern})")
    unknown_roles = sorted(set(roles) - set(ROLES))
    if unknown_roles:
        raise ValueError(f"scope {name!r}: unknown role(s) {unknown_roles}; roles are {list(ROLES)}")
    if personal and roles:
        raise ValueError(f"scope {name!r} is personal: no role may grant it by default, register it with "
                         f"roles=() (it is granted only by listing it in a token's or user's scopes)")
    scope = Scope(name, description, personal, frozenset(roles))
    with _lock:
        existing = _registry.get(name)
        if existing is not None and existing != scope:
            raise ValueError(f"scope {name!r} is already registered differently: {existing} (new: {scope})")
        _registry[name] = scope
    return scope


def all_scopes() -> dict[str, Scope]:
    """A copy of the registry, by name."""
    with _lock:
        return dict(_registry)


def scopes_for_role(role: str) -> frozenset[str]:
    """The role's default scopes: every registered scope naming the role (never a personal one)."""
    with _lock:
        return frozenset(s.name for s in _registry.values() if role in s.roles and not s.personal)


def get_scope(name: str) -> Scope | None:
    with _lock:
        return _registry.get(name)


METERS_READ = register_scope(
    "meters:read", "device data of every non-personal kind: /api/devices, /api/latest, /api/series, "
    "/api/sites, /api/completeness")
OPS_READ = register_scope("ops:read", "/metrics, dead letters", roles=("admin",))
COMMANDS_READ = register_scope("commands:read", "commands sent to edge agents and their results", roles=("admin",))
COMMANDS_WRITE = register_scope("commands:write", "send commands to edge agents", roles=("admin",))
VITALS_READ = register_scope("vitals:read", "personal health data (vitals) of the people wearing devices",
                             personal=True, roles=())
