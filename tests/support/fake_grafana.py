"""A stateful stand-in for Grafana's HTTP API, serving the recorded answers in tests/dashboards/recorded/.

No Grafana server can run in this test environment, so ``dashboards.deploy`` is tested against
this: a ``http.server`` on a free loopback port that answers the endpoints the deploy uses with
the recorded response shapes (Grafana 11.3, see each file's ``_recorded``), filled with what
earlier requests stored: a second deploy sees what the first one PUT or POSTed.

It also records every request (method, path, Authorization header, JSON body) for the tests.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDED = Path(__file__).resolve().parents[1] / "dashboards" / "recorded"


def recorded(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))


class FakeGrafana:
    def __init__(self, token: str):
        self.token = token
        self.datasources: dict[str, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}      # uid -> {"dashboard": ..., "folderUid": ...}
        self.rules: dict[str, dict] = {}
        self.group_intervals: dict[tuple[str, str], int] = {}
        self.requests: list[dict] = []
        self.fail: dict[tuple[str, str], tuple[int, dict]] = {}   # (method, path) -> forced answer
        self._ids = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[dict]:
        return [r for r in self.requests if r["method"] != "GET"]

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -------------------------------------------------------------- the routes

    def route(self, method: str, path: str, body):
        """-> (status, json body)"""
        r = lambda name, status: copy.deepcopy(recorded(name)["responses"][str(status)])  # noqa: E731
        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                ds = self.datasources.get(uid)
                return (404, r("datasources_uid_GET", 404)) if ds is None else (200, self._ds_view(ds))
            if method == "PUT":
                if uid not in self.datasources:
                    return 404, r("datasources_uid_GET", 404)
                self.datasources[uid] = self._ds_store(body, self.datasources[uid])
                out = r("datasources_uid_PUT", 200)
                out.update(datasource=self._ds_view(self.datasources[uid]), id=self.datasources[uid]["id"],
                           name=body["name"])
                return 200, out
        if path == "/api/datasources" and method == "POST":
            if any(d["name"] == body.get("name") for d in self.datasources.values()):
                return 409, r("datasources_POST", 409)
            ds = self._ds_store(body, None)
            self.datasources[ds["uid"]] = ds
            out = r("datasources_POST", 200)
            out.update(datasource=self._ds_view(ds), id=ds["id"], name=ds["name"])
            return 200, out
        if m := re.fullmatch(r"/api/folders/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                f = self.folders.get(uid)
                return (404, r("folders_uid_GET", 404)) if f is None else (200, f)
        if path == "/api/folders" and method == "POST":
            if any(f["title"] == body["title"] for f in self.folders.values()):
                return 409, r("folders_POST", 409)
            folder = {**r("folders_POST", 200), "id": self._next_id(), "uid": body["uid"], "title": body["title"],
                      "url": f"/dashboards/f/{body['uid']}/{body['title']}"}
            self.folders[body["uid"]] = folder
            return 200, folder
        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                saved = self.dashboards.get(uid)
                if saved is None:
                    return 404, r("dashboards_uid_GET", 404)
                out = r("dashboards_uid_GET", 200)
                folder = self.folders[saved["folderUid"]]
                out["dashboard"] = copy.deepcopy(saved["dashboard"])
                out["meta"].update(folderUid=folder["uid"], folderTitle=folder["title"], folderId=folder["id"],
                                   version=saved["dashboard"]["version"], url=f"/d/{uid}/x", slug="x")
                return 200, out
        if path == "/api/dashboards/db" and method == "POST":
            board = copy.deepcopy(body["dashboard"])
            uid = board["uid"]
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(uid)
            if old and not body.get("overwrite"):
                return 412, r("dashboards_db_POST", 412)
            board["id"] = old["dashboard"]["id"] if old else self._next_id()
            board["version"] = old["dashboard"]["version"] + 1 if old else 1
            self.dashboards[uid] = {"dashboard": board, "folderUid": body["folderUid"]}
            out = r("dashboards_db_POST", 200)
            out.update(id=board["id"], uid=uid, url=f"/d/{uid}/x", version=board["version"], slug="x")
            return 200, out
        if m := re.fullmatch(r"/api/v1/provisioning/alert-rules/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                rule = self.rules.get(uid)
                return (404, r("alert-rules_uid_GET", 404)) if rule is None else (200, copy.deepcopy(rule))
            if method == "PUT":
                if uid not in self.rules:
                    return 404, r("alert-rules_uid_GET", 404)
                self.rules[uid] = self._rule_store(body, "alert-rules_uid_PUT", 200, self.rules[uid]["id"])
                return 200, copy.deepcopy(self.rules[uid])
        if path == "/api/v1/provisioning/alert-rules" and method == "POST":
            if not body.get("title") or body.get("folderUID") not in self.folders:
                return 400, r("alert-rules_POST", 400)
            rule = self._rule_store(body, "alert-rules_POST", 201, self._next_id())
            self.rules[rule["uid"]] = rule
            self.group_intervals.setdefault((rule["folderUID"], rule["ruleGroup"]), 60)
            return 201, copy.deepcopy(rule)
        if m := re.fullmatch(r"/api/v1/provisioning/folder/([^/]+)/rule-groups/([^/]+)", path):
            key = (m.group(1), m.group(2))
            if key not in self.group_intervals:
                return 404, r("rule-groups_GET", 404)
            if method == "PUT":
                self.group_intervals[key] = int(body["interval"])
            out = r("rule-groups_GET" if method == "GET" else "rule-groups_PUT", 200)
            out.update(title=key[1], folderUid=key[0], interval=self.group_intervals[key],
                       rules=[copy.deepcopy(x) for x in self.rules.values()
                              if (x["folderUID"], x["ruleGroup"]) == key])
            return 200, out
        return 404, {"message": "Not found"}

    def _ds_store(self, body: dict, old: dict | None) -> dict:
        ds = {k: v for k, v in body.items() if k != "secureJsonData"}
        ds["id"] = old["id"] if old else self._next_id()
        ds.setdefault("uid", f"auto{ds['id']}")
        ds["version"] = old["version"] + 1 if old else 1
        secrets = dict(old.get("_secrets", {})) if old else {}
        secrets.update(body.get("secureJsonData") or {})
        ds["_secrets"] = secrets
        return ds

    def _ds_view(self, ds: dict) -> dict:
        view = copy.deepcopy(recorded("datasources_uid_GET")["responses"]["200"])
        view.update({k: copy.deepcopy(v) for k, v in ds.items() if k != "_secrets"})
        view["secureJsonFields"] = {k: True for k in ds["_secrets"]}
        return view

    def _rule_store(self, body: dict, name: str, status: int, rule_id: int) -> dict:
        rule = copy.deepcopy(recorded(name)["responses"][str(status)])
        rule.update(copy.deepcopy(body))
        rule.update(id=rule_id, provenance="api", updated="2026-11-29T00:00:00Z")
        return rule

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                auth = self.headers.get("Authorization")
                with fake._lock:
                    fake.requests.append({"method": self.command, "path": path, "authorization": auth, "json": body})
                    if auth != f"Bearer {fake.token}":
                        status, out = 401, recorded("unauthorized")["responses"]["401"]
                    elif (self.command, path) in fake.fail:
                        status, out = fake.fail[(self.command, path)]
                    else:
                        status, out = fake.route(self.command, path, body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return Handler
