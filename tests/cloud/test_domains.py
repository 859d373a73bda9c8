"""The domain framework: discovery, declaration checks, config errors named like the rest of
cloud.yaml, and installation into the app (scopes, routes under /api/<name>, jobs)."""

from __future__ import annotations

import textwrap
import uuid

import pytest
from fastapi import APIRouter

from cloud.api import create_app
from cloud.config import CloudConfig, CloudConfigError, load_cloud_config
from cloud.domains import Domain, DomainError, check_domain_configs, discover
from cloud.scheduler import Job


def make_package(tmp_path, monkeypatch, domains: dict[str, str]) -> str:
    """A throwaway package of domains on sys.path: {subpackage: __init__.py source}."""
    name = f"domains_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for sub, source in domains.items():
        (root / sub).mkdir()
        (root / sub / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_the_shipped_domains_are_discovered():
    energy = {d.name: d for d in discover()}["energy"]
    assert energy.route_scope == "energy:read" and [j.name for j in energy.jobs] == ["energy.slots"]


def test_a_broken_domain_is_an_error_naming_it_not_skipped(tmp_path, monkeypatch):
    package = make_package(tmp_path, monkeypatch, {
        "good": "from cloud.domains import Domain\nDOMAIN = Domain(name='good')\n",
        "bad": "import module_that_does_not_exist\n",
    })
    with pytest.raises(DomainError, match=rf"domain 'bad' \({package}.bad\) failed to import: "
                                          r"ModuleNotFoundError: No module named 'module_that_does_not_exist'"):
        discover((package,))


@pytest.mark.parametrize("source, error", [
    ("X = 1", "exports no DOMAIN"),
    ("from cloud.domains import Domain\nDOMAIN = Domain(name='other')", "must be the package name 'wrong'"),
])
def test_a_domain_package_must_export_its_domain(tmp_path, monkeypatch, source, error):
    package = make_package(tmp_path, monkeypatch, {"wrong": source})
    with pytest.raises(DomainError, match=error):
        discover((package,))


async def _noop(start, end, ctx):
    return []


@pytest.mark.parametrize("kwargs, error", [
    ({"name": "Bad-Name"}, "must match"),
    ({"scopes": {"other:read": ("x", False)}}, "must start with 'shop:'"),
    ({"jobs": [Job("other.x", 60, _noop)]}, "must be named 'shop.<what>'"),
    ({"router": APIRouter()}, "its routes need scope 'shop:read'"),
    ({"router": APIRouter(prefix="/x"), "scopes": {"shop:read": ("x", False)}}, "leave the router's prefix empty"),
])
def test_domain_declarations_are_checked(kwargs, error):
    with pytest.raises(DomainError, match=error):
        Domain(**{"name": "shop", **kwargs})


def write_config(tmp_path, text: str):
    path = tmp_path / "cloud.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_config_sections_are_checked_at_load_time_with_file_and_key(tmp_path, capsys):
    path = write_config(tmp_path, """
        domains:
          energy: {max_gap_s: 5, colour: red}
          enrgy: {}
    """)
    with pytest.raises(CloudConfigError) as caught:
        load_cloud_config(path)
    lines = str(caught.value).splitlines()
    assert f"{path}: domains.enrgy: no such domain (known: charging, co2, energy, fleet, forecast, interchange, roadmap, vitals)" in lines
    assert f"{path}: domains.energy.max_gap_s: Input should be greater than or equal to 60 (got 5)" in lines
    assert f"{path}: domains.energy.colour: Extra inputs are not permitted (got 'red')" in lines

    from cloud.__main__ import main
    assert main(["check-config", str(path)]) == 2
    assert "domains.energy.max_gap_s" in capsys.readouterr().err

    good = load_cloud_config(write_config(tmp_path, "domains: {energy: {max_gap_s: 600}}\nscheduler: {enabled: false}\n"))
    assert good.domains == {"energy": {"max_gap_s": 600}} and good.scheduler.enabled is False
    assert check_domain_configs(good)["energy"].max_gap_s == 600


def test_installing_puts_routes_under_api_name_behind_the_scope(tmp_path, monkeypatch):
    package = make_package(tmp_path, monkeypatch, {"shop": """
        from fastapi import APIRouter
        from pydantic import BaseModel
        from cloud.domains import Domain
        from cloud.scheduler import Job

        router = APIRouter()

        @router.get("/open")
        async def is_open() -> dict:
            return {"open": True}

        class ShopConfig(BaseModel):
            hours: int = 8

        async def run(start, end, ctx):
            return []

        DOMAIN = Domain(name="shop", router=router, config_model=ShopConfig,
                        scopes={"shop:read": ("opening hours", False), "shop:write": ("change them", False)},
                        jobs=[Job("shop.tally", 3600, run)])
    """})
    config = CloudConfig.model_validate({"domains": {"shop": {"hours": 10}}})
    app = create_app(config, domain_packages=(package,))
    from cloud.api.scopes import get_scope
    assert get_scope("shop:read").roles == frozenset({"viewer", "admin"})
    assert get_scope("shop:write").roles == frozenset({"admin"})
    assert app.state.domain_configs["shop"].hours == 10
    assert [job.name for job in app.state.scheduler.jobs] == ["shop.tally"]
    from cloud.api.auth import routes_and_scopes
    assert {path: scopes for path, _, scopes in routes_and_scopes(app)}["/api/shop/open"] == {"shop:read"}

    bad = CloudConfig.model_validate({"domains": {"shop": {"hours": "many"}}})
    with pytest.raises(CloudConfigError, match=r"cloud config: domains.shop.hours: Input should be a valid integer"):
        create_app(bad, domain_packages=(package,))


def test_a_domain_cannot_take_over_an_existing_api_path(tmp_path, monkeypatch):
    package = make_package(tmp_path, monkeypatch, {"devices": """
        from fastapi import APIRouter
        from cloud.domains import Domain
        router = APIRouter()
        @router.get("/x")
        async def x() -> dict:
            return {}
        DOMAIN = Domain(name="devices", router=router, scopes={"devices:read": ("x", False)})
    """})
    with pytest.raises(DomainError, match="/api/devices is already served"):
        create_app(CloudConfig(), domain_packages=(package,))
