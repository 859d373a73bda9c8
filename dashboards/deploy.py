"""Push an exported provisioning directory into a running Grafana over its HTTP API.

    python -m dashboards export DIR
    python -m dashboards deploy DIR --url https://grafana.example --token-env GRAFANA_TOKEN

``deploy(export_dir, url, token)`` reads what ``dashboards.provisioning.export`` wrote:

    DIR/datasources/hinode.yaml        the InfluxDB data source (created or updated by uid)
    DIR/dashboards/hinode.yaml         the dashboard provider: its ``folder`` / ``folderUid`` name the folder
    DIR/dashboards/json/<uid>.json     one dashboard each (created or updated by uid, in that folder)
    DIR/alerting/hinode.yaml           rule groups (each rule created or updated by uid; the group interval set)

It is idempotent: every object is read first and written only when it differs, so a second
deploy of the same directory returns ``{"changed": 0, ...}``. Comparison rules:

* dashboards: the whole JSON except Grafana's own ``id`` and ``version``, plus the folder;
* data source and alert rules: every key the export sets must have the same value in Grafana
  (keys Grafana adds, such as ``id``, ``orgId``, ``updated`` or ``provenance``, are ignored);
* data source secrets (``secureJsonData``) cannot be read back: they count as equal when Grafana
  reports them set (``secureJsonFields``). To rotate a password, change it in Grafana or pass
  ``deploy(..., force_secrets=True)`` (no command-line flag for it yet).

Strings in the data source file may name environment variables as ``$VAR`` or ``${VAR}``, like
Grafana's own file provisioning; they are substituted before the push (an unset one is an error).
``$$`` stands for a literal ``$`` in both the data source and the alert files; alert queries keep
``$timeFilter`` and the like as they are.

The token is sent only in the ``Authorization: Bearer`` header. It is never printed or logged,
and it is scrubbed from every error message. Errors say what failed, the HTTP status and
Grafana's own message, e.g. ``dashboard hinode-site-energy-en: save: HTTP 412: The dashboard has been
changed by someone else``.

Nothing is deleted: a board or rule dropped from the export stays in Grafana until removed there.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

log = logging.getLogger(__name__)

DEFAULT_FOLDER_UID = "hinode"
DEFAULT_FOLDER_TITLE = "hinode"
DASHBOARD_OWN_KEYS = {"id", "version"}
_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class DeployError(RuntimeError):
    """One Grafana call failed; the message names the object, the HTTP status and Grafana's message."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- reading the export

def _expand(value: Any, missing: set[str] | None) -> Any:
    """``$VAR``/``${VAR}`` -> the environment (``missing`` None: leave them), ``$$`` -> ``$``."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name is None:
                return "$"
            if missing is None:
                return m.group(0)
            if name in os.environ:
                return os.environ[name]
            missing.add(name)
            return m.group(0)
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, missing) for v in value]
    return value


def _yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DeployError(f"{path}: not valid YAML: {exc}") from exc


def seconds(value: Any) -> float | None:
    """``"5m"`` / ``"1h30m"`` / ``300`` -> seconds (Grafana answers durations in either form)."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    if text in ("", "0"):
        return 0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DeployError(f"not a duration: {value!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def read_export(export_dir: Path) -> dict:
    """The desired state: ``{"folder": {...}, "datasources": [...], "dashboards": {uid: json}, "groups": [...]}``."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise DeployError(f"{export_dir}: no such export directory (run `hinode dashboards export {export_dir}` first)")
    missing: set[str] = set()
    datasources = _expand(_yaml(export_dir / "datasources" / "hinode.yaml").get("datasources") or [], missing)
    providers = _yaml(export_dir / "dashboards" / "hinode.yaml").get("providers") or [{}]
    folder = {"uid": providers[0].get("folderUid") or DEFAULT_FOLDER_UID,
              "title": providers[0].get("folder") or DEFAULT_FOLDER_TITLE}
    dashboards = {}
    for path in sorted((export_dir / "dashboards" / "json").glob("*.json")):
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DeployError(f"{path}: not valid JSON: {exc}") from exc
        dashboards[board.get("uid") or path.stem] = board
    # Alert queries use Grafana's own $timeFilter / $__interval: only `$$` is unescaped there.
    groups = _expand(_yaml(export_dir / "alerting" / "hinode.yaml").get("groups") or [], None)
    if missing:
        raise DeployError("environment variables named in the export are not set: " + ", ".join(sorted(missing)))
    return {"folder": folder, "datasources": datasources, "dashboards": dashboards, "groups": groups}


# ---------------------------------------------------------------- comparing

def contains(have: Any, want: Any, path: str = "") -> str | None:
    """None when every key/value of ``want`` is in ``have``; otherwise the first differing path."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return path or "."
        for key, value in want.items():
            where = contains(have.get(key), value, f"{path}.{key}")
            if where:
                return where
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return path or "."
        for i, (h, w) in enumerate(zip(have, want)):
            where = contains(h, w, f"{path}[{i}]")
            if where:
                return where
        return None
    if want != have and not (want in (None, "", {}, []) and have in (None, "", {}, [])):
        return path or "."
    return None


def rule_for_api(rule: dict, group: dict, folder_uid: str) -> dict:
    """A rule from the file-provisioning format -> the provisioning API's ProvisionedAlertRule."""
    api = {k: v for k, v in rule.items() if k not in ("for", "orgId")}
    api.update(folderUID=folder_uid, ruleGroup=group["name"], orgID=group.get("orgId", 1))
    if "for" in rule:
        api["for"] = rule["for"]
    return api


def rule_differs(have: dict, want: dict) -> str | None:
    if "for" in want and seconds(have.get("for")) != seconds(want["for"]):
        return ".for"
    return contains(have, {k: v for k, v in want.items() if k != "for"})


def datasource_differs(have: dict, want: dict, force_secrets: bool) -> str | None:
    secrets = want.get("secureJsonData") or {}
    if secrets and (force_secrets or not all((have.get("secureJsonFields") or {}).get(k) for k in secrets)):
        return ".secureJsonData"
    return contains(have, {k: v for k, v in want.items() if k not in ("secureJsonData", "editable", "orgId")})


# ---------------------------------------------------------------- talking to Grafana

class _Grafana:
    """The few grafana-client calls the deploy needs, with errors that name what failed."""

    def __init__(self, url: str, token: str, timeout: float):
        from grafana_client import GrafanaApi
        from grafana_client.client import TokenAuth
        self.url = url.rstrip("/")
        self._token = token
        self.api = GrafanaApi.from_url(self.url, credential=TokenAuth(token), timeout=timeout)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def call(self, what: str, fn: Callable, *args, missing_ok: bool = False):
        from grafana_client.client import GrafanaException
        try:
            return fn(*args)
        except GrafanaException as exc:
            if missing_ok and exc.status_code == 404:
                return None
            body = exc.response
            message = body.get("message") if isinstance(body, dict) else (body or exc.message)
            hint = " (check the token: a Grafana service account token with the Editor or Admin role)" \
                if exc.status_code in (401, 403) else ""
            status = f"HTTP {exc.status_code}" if exc.status_code else "request failed"
            raise DeployError(self._scrub(f"{what}: {status}: {message}{hint}"), exc.status_code) from None
        except OSError as exc:  # connection refused, TLS, DNS (niquests' exceptions are OSErrors)
            raise DeployError(self._scrub(f"{what}: cannot reach Grafana at {self.url}: "
                                          f"{type(exc).__name__}: {exc}")) from None


def deploy(export_dir: Path, url: str, token: str, *, force_secrets: bool = False,
           timeout: float = 10.0) -> dict:
    """Create or update the data source(s), the folder, every dashboard and every alert rule.

    Returns ``{"changed": n, "created": [...], "updated": [...], "unchanged": [...]}`` whose
    items are ``"kind:uid"`` strings (never a secret). Raises ``DeployError`` on the first failure.
    """
    want = read_export(Path(export_dir))
    if not token:
        raise DeployError("no Grafana token given (set the variable named by --token-env)")
    g = _Grafana(url, token, timeout)
    result: dict = {"changed": 0, "created": [], "updated": [], "unchanged": []}

    def note(kind: str, uid: str, action: str, why: str | None = None) -> None:
        result[action].append(f"{kind}:{uid}")
        if action != "unchanged":
            result["changed"] += 1
        log.info("grafana %s %s %s%s", kind, uid, action, f" ({why} differs)" if why else "")

    api = g.api
    for ds in want["datasources"]:
        uid = ds.get("uid")
        if not uid:
            raise DeployError(f"data source {ds.get('name')!r} has no uid in the export")
        body = {k: v for k, v in ds.items() if k not in ("editable", "orgId")}
        have = g.call(f"data source {uid}: read", api.datasource.get_datasource_by_uid, uid, missing_ok=True)
        if have is None:
            g.call(f"data source {uid}: create", api.datasource.create_datasource, body)
            note("datasource", uid, "created")
        elif why := datasource_differs(have, ds, force_secrets):
            g.call(f"data source {uid}: update", api.datasource.update_datasource_by_uid, uid, body)
            note("datasource", uid, "updated", why)
        else:
            note("datasource", uid, "unchanged")

    folder = want["folder"]
    have = g.call(f"folder {folder['uid']}: read", api.folder.get_folder, folder["uid"], missing_ok=True)
    if have is None:
        g.call(f"folder {folder['uid']}: create", api.folder.create_folder, folder["title"], folder["uid"])
        note("folder", folder["uid"], "created")
    elif have.get("title") != folder["title"]:
        g.call(f"folder {folder['uid']}: rename", lambda: api.folder.update_folder(
            folder["uid"], title=folder["title"], version=have.get("version"), overwrite=True))
        note("folder", folder["uid"], "updated", ".title")
    else:
        note("folder", folder["uid"], "unchanged")

    for uid, board in want["dashboards"].items():
        have = g.call(f"dashboard {uid}: read", api.dashboard.get_dashboard, uid, missing_ok=True)
        mine = {k: v for k, v in board.items() if k not in DASHBOARD_OWN_KEYS}
        if have is not None:
            theirs = {k: v for k, v in (have.get("dashboard") or {}).items() if k not in DASHBOARD_OWN_KEYS}
            in_folder = (have.get("meta") or {}).get("folderUid") == folder["uid"]
            if theirs == mine and in_folder:
                note("dashboard", uid, "unchanged")
                continue
        g.call(f"dashboard {uid}: save", api.dashboard.update_dashboard,
               {"dashboard": {**mine, "id": None}, "folderUid": folder["uid"], "overwrite": True,
                "message": "hinode dashboards deploy"})
        note("dashboard", uid, "created" if have is None else "updated")

    for group in want["groups"]:
        folder_uid = _group_folder(group, folder)
        for rule in group.get("rules") or []:
            uid = rule.get("uid")
            if not uid:
                raise DeployError(f"alert rule {rule.get('title')!r} in group {group.get('name')!r} has no uid")
            body = rule_for_api(rule, group, folder_uid)
            have = g.call(f"alert rule {uid}: read", api.alertingprovisioning.get_alertrule, uid, missing_ok=True)
            if have is None:
                g.call(f"alert rule {uid}: create", api.alertingprovisioning.create_alertrule, body)
                note("alert-rule", uid, "created")
            elif why := rule_differs(have, body):
                g.call(f"alert rule {uid}: update", api.alertingprovisioning.update_alertrule, uid, body)
                note("alert-rule", uid, "updated", why)
            else:
                note("alert-rule", uid, "unchanged")
        if group.get("interval") and group.get("rules"):
            name = group["name"]
            have = g.call(f"rule group {name}: read", api.alertingprovisioning.get_rule_group, folder_uid, name)
            if seconds(have.get("interval")) != seconds(group["interval"]):
                g.call(f"rule group {name}: set interval", api.alertingprovisioning.update_rule_group,
                       folder_uid, name, {**have, "interval": int(seconds(group["interval"]))})
                note("rule-group", name, "updated", ".interval")
    return result


def _group_folder(group: dict, folder: dict) -> str:
    """Rule groups name their folder by title (file provisioning) or uid; deploy has one folder."""
    named = group.get("folderUid") or group.get("folder")
    if named and named not in (folder["uid"], folder["title"]):
        raise DeployError(f"rule group {group.get('name')!r} is in folder {named!r}; "
                          f"deploy manages only the folder {folder['title']!r} (uid {folder['uid']})")
    return folder["uid"]
