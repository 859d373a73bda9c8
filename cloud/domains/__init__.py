"""Domain modules: one package per city service, found and wired in without a central list.

A domain is a subpackage ``cloud/domains/<name>/`` whose ``__init__.py`` exports
``DOMAIN = Domain(...)``: its router (served under ``/api/<name>/``), the pydantic model of
its config section (``domains.<name>`` in cloud.yaml), its access scopes and its periodic
jobs. :func:`install_domains` (called by ``create_app``) registers the scopes, checks the
config section, includes the router behind its scope and hands the jobs to the scheduler,
so adding a domain edits no file outside its folder. See README.md, "Cloud domains".

This package holds the framework only; every subpackage of it is a domain (a subpackage
whose name starts with ``_`` is skipped, for code shared between domains).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Callable, Iterable

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from cloud.config import CloudConfig, CloudConfigError, validation_error_lines
from cloud.scheduler import Job

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from fastapi import FastAPI

DEFAULT_PACKAGES = ("cloud.domains",)
DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class DomainError(RuntimeError):
    """A domain that cannot be loaded or is declared wrongly; the message names it."""


@dataclass
class Domain:
    name: str
    router: APIRouter | None = None
    config_model: type[BaseModel] | None = None
    # scope name -> (description, personal). A personal scope is granted to no role by default;
    # other "<name>:read" scopes go to viewer and admin, "<name>:write" scopes to admin.
    scopes: dict[str, tuple[str, bool]] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    # The scope every route of ``router`` requires; default "<name>:read".
    route_scope: str | None = None
    # Routes served WITHOUT authentication under /public/<name>/ (a public feed such as GBFS).
    public_router: APIRouter | None = None
    # ``lifespan(app, config)`` -> an async context manager entered when the services start
    # (``python -m cloud serve``) and left when they stop: a domain's long-running worker.
    lifespan: Callable[[Any, Any], AbstractAsyncContextManager] | None = None

    def __post_init__(self):
        if not DOMAIN_NAME.fullmatch(self.name):
            raise DomainError(f"domain name {self.name!r} must match {DOMAIN_NAME.pattern}")
        for scope in self.scopes:
            if not scope.startswith(f"{self.name}:"):
                raise DomainError(f"domain {self.name}: scope {scope!r} must start with '{self.name}:'")
        for job in self.jobs:
            if not job.name.startswith(f"{self.name}."):
                raise DomainError(f"domain {self.name}: job {job.name!r} must be named '{self.name}.<what>'")
        if self.router is not None:
            self.route_scope = self.route_scope or f"{self.name}:read"
            if self.route_scope not in self.scopes:
                raise DomainError(f"domain {self.name}: its routes need scope {self.route_scope!r}, "
                                  f"which is not among its scopes {sorted(self.scopes)}")
            if self.router.prefix:
                raise DomainError(f"domain {self.name}: leave the router's prefix empty; it is served under "
                                  f"/api/{self.name}")
        if self.public_router is not None and self.public_router.prefix:
            raise DomainError(f"domain {self.name}: leave the public router's prefix empty; it is served under "
                              f"/public/{self.name}")


def discover(packages: Iterable[str] = DEFAULT_PACKAGES) -> list[Domain]:
    """Every domain in the given packages, in name order per package.

    A domain that fails to import raises DomainError naming it (never skipped silently).
    """
    found: dict[str, tuple[str, Domain]] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.ispkg or info.name.startswith("_"):
                continue
            module_name = f"{package_name}.{info.name}"
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise DomainError(f"domain {info.name!r} ({module_name}) failed to import: "
                                  f"{type(exc).__name__}: {exc}") from exc
            domain = getattr(module, "DOMAIN", None)
            if not isinstance(domain, Domain):
                raise DomainError(f"domain {info.name!r} ({module_name}) exports no DOMAIN = Domain(...)")
            if domain.name != info.name:
                raise DomainError(f"{module_name}: DOMAIN.name is {domain.name!r}; it must be the package name "
                                  f"{info.name!r} (its routes, config key and scopes use it)")
            if domain.name in found:
                raise DomainError(f"domain {domain.name!r} exists twice: {found[domain.name][0]} and {module_name}")
            found[domain.name] = (module_name, domain)
    return [domain for _, domain in found.values()]


def check_domain_configs(config: CloudConfig, source: str = "cloud config", *,
                         packages: Iterable[str] = DEFAULT_PACKAGES,
                         domains: list[Domain] | None = None) -> dict[str, Any]:
    """Each domain's section validated by its config model: name -> model instance (None if it has none).

    Errors name the source, ``domains.<name>.<key>`` and what was expected, like load_cloud_config.
    """
    domains = discover(packages) if domains is None else domains
    by_name = {d.name: d for d in domains}
    lines: list[str] = []
    for name in config.domains:
        if name not in by_name:
            lines.append(f"{source}: domains.{name}: no such domain (known: {', '.join(sorted(by_name)) or 'none'})")
    validated: dict[str, Any] = {}
    for domain in domains:
        section = config.domains.get(domain.name, {})
        if domain.config_model is None:
            if section:
                lines.append(f"{source}: domains.{domain.name}: this domain takes no configuration")
            validated[domain.name] = None
            continue
        try:
            validated[domain.name] = domain.config_model.model_validate(section)
        except ValidationError as exc:
            lines += validation_error_lines(exc, source, ("domains", domain.name))
    if lines:
        raise CloudConfigError("\n".join(lines))
    return validated


def register_domain_scopes(domains: Iterable[Domain]) -> None:
    """Before the Authenticator checks the scope names configured for tokens and users."""
    from cloud.api.scopes import register_scope
    for domain in domains:
        for scope, (description, personal) in domain.scopes.items():
            if personal:
                roles: tuple[str, ...] = ()
            elif scope.endswith(":write"):
                roles = ("admin",)
            else:
                roles = ("viewer", "admin")
            try:
                register_scope(scope, description, personal=personal, roles=roles)
            except ValueError as exc:
                raise DomainError(f"domain {domain.name}: {exc}") from None


def install_domains(app: FastAPI, config: CloudConfig, packages: Iterable[str] = DEFAULT_PACKAGES, *,
                    domains: list[Domain] | None = None) -> list[Domain]:
    """Scopes, config, routes and jobs of every domain; needs ``app.state.auth`` (and ``.scheduler``)."""
    domains = discover(packages) if domains is None else domains
    register_domain_scopes(domains)
    configs = check_domain_configs(config, domains=domains)
    app.state.domain_configs = configs
    app.state.domains = {d.name: d for d in domains}
    scheduler = getattr(app.state, "scheduler", None)
    from cloud.api.auth import routes_and_scopes  # flattens included routers
    taken = {path for path, _, _ in routes_and_scopes(app) if path}
    for domain in domains:
        if domain.router is not None:
            prefix = f"/api/{domain.name}"
            clash = sorted(p for p in taken if p == prefix or p.startswith(prefix + "/"))
            if clash:
                raise DomainError(f"domain {domain.name}: /api/{domain.name} is already served ({clash[0]}); "
                                  f"choose another domain name")
            app.include_router(domain.router, prefix=f"/api/{domain.name}", tags=[domain.name],
                               dependencies=[Depends(app.state.auth.require_scope(domain.route_scope))])
        if domain.public_router is not None:
            app.include_router(domain.public_router, prefix=f"/public/{domain.name}", tags=[f"{domain.name} (public)"])
        if scheduler is not None:
            for job in domain.jobs:
                scheduler.add(job, configs[domain.name])
    return domains


async def start_domain_lifespans(app: FastAPI, stack: AsyncExitStack) -> None:
    """Enter every domain's ``lifespan(app, config)`` on ``stack`` (left in reverse order when it closes)."""
    for domain in app.state.domains.values():
        if domain.lifespan is not None:
            await stack.enter_async_context(domain.lifespan(app, app.state.domain_configs[domain.name]))


def domain_config(request: Request, name: str) -> Any:
    """A route's view of its domain's validated config section."""
    return request.app.state.domain_configs[name]
