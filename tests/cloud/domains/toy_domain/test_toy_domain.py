"""Worked example: a domain that lives in the tests (./toy), discovered through ``domain_packages``,
served behind its scope, configured from ``domains.toy``, and whose job the app's scheduler runs."""

from __future__ import annotations

import time

import httpx
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, wait_for, write_lines

pytestmark = pytest.mark.timeout(60)

SLOT = 600_000
VIEWER, ADMIN = "toy-viewer-token", "toy-admin-token"


def test_toy_domain_route_and_scheduled_job(influx):
    now = int(time.time() * 1000) // SLOT * SLOT + 5_000          # 5 s into a slot
    due = now // SLOT * SLOT - SLOT                              # the slot that just ended
    write_lines(influx.url, [
        f"meter,site=plant-a,agent=edge-1,device=m1 load_kw=10.0 {due + 1_000}",
        f"meter,site=plant-a,agent=edge-1,device=m1 load_kw=42.5 {due + 2_000}",
        f"meter,site=plant-a,agent=edge-1,device=m2 load_kw=7.0 {due + 3_000}",
        f"meter,site=plant-b,agent=edge-9,device=x1 load_kw=99.0 {due + 3_000}",
    ])
    tokens = [{"name": "v", "role": "viewer", "hash": api_secrets.hash_token(VIEWER)},
              {"name": "a", "role": "admin", "hash": api_secrets.hash_token(ADMIN)}]
    config = CloudConfig.model_validate({
        "influx": {"url": influx.url},
        "api": {"auth": {"tokens": tokens}},
        "domains": {"toy": {"metric": "load_kw"}},
        "scheduler": {"enabled": True},
    })
    app = create_app(config, manage_services=True, domain_packages=("tests.cloud.domains.toy_domain",))
    app.state.scheduler.now_ms = lambda: now                     # a clock the test controls

    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        viewer = {"Authorization": f"Bearer {VIEWER}"}
        assert client.get("/api/toy/peaks", params={"site": "plant-a"}).status_code == 401
        response = client.get("/api/toy/peaks", params={"site": "plant-a", "start": "-30m"}, headers=viewer)
        assert response.status_code == 200, response.text
        assert [(p["device"], p["slot_start"], p["peak"], p["readings"]) for p in response.json()["peaks"]] == \
            [("m1", due, 42.5, 2), ("m2", due, 7.0, 1)]
        bad = client.get("/api/toy/peaks", params={"site": "no way"}, headers=viewer)
        assert bad.status_code == 422 and bad.json()["parameter"] == "site"

        # the scheduler started with the app and ran the toy's job for the slot that just ended
        assert wait_for(lambda: app.state.scheduler.counters()["toy.peaks"]["runs"] == 1, timeout=10)
        result = influx.query('SELECT "peak", "readings" FROM "toy_peak" GROUP BY "site", "device"', db="hinode")
        stored = {(s["tags"]["site"], s["tags"]["device"]): s["values"] for s in result["results"][0]["series"]}
        assert stored == {("plant-a", "m1"): [[due, 42.5, 2]], ("plant-a", "m2"): [[due, 7.0, 1]],
                          ("plant-b", "x1"): [[due, 99.0, 1]]}
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
        assert 'hinode_job_runs_total{job="toy.peaks"} 1.0' in metrics


def test_toy_domain_public_route_and_worker_lifespan(influx):
    config = CloudConfig.model_validate({"influx": {"url": influx.url},
                                         "api": {"auth": {"tokens": [{"name": "v", "role": "viewer",
                                                                      "hash": api_secrets.hash_token(VIEWER)}]}}})
    app = create_app(config, manage_services=True, domain_packages=("tests.cloud.domains.toy_domain",))
    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/toy/peaks", params={"site": "plant-a"}).status_code == 401
        # the worker runs: its count rises, read through the public route without any credential
        first = client.get("/public/toy/beats")
        assert first.status_code == 200, first.text
        assert wait_for(lambda: client.get("/public/toy/beats").json()["beats"] > first.json()["beats"], timeout=10)
    assert app.state.toy_stopped
