"""Commands to edge agents: send one, list them, read one's outcome.

``POST /api/commands`` (scope ``commands:write``) builds a :class:`hinode.contract.Command`
with a fresh id, records it in InfluxDB (``hinode_command``) and publishes it at QoS 1
under the API's MQTT identity (``api.mqtt``, else ``mqtt``; the only identity the generated
ACL lets publish commands, so an ingest's credentials cannot drive any site's devices).
The agent answers on its result topic; the ingest stores every answer
(``hinode_command_result``). ``GET /api/commands`` and ``GET /api/commands/{id}``
(scope ``commands:read``) join the two: who sent what, to which agent, when, and what
became of it.

The broker keeps a command for an agent that is offline only if that agent has connected
once (its persistent session exists), so a command to an agent the cloud has never seen
is refused with 404 instead of vanishing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from cloud.api import params
from cloud.influx import quote_string
from cloud.ingest.records import COMMAND_MEASUREMENT, RESULT_MEASUREMENT
from cloud.points import Point
from hinode import contract
from hinode.contract import CommandName, Ident, ParamValue

# Two routers, one per scope: the app includes them with commands:write and commands:read.
write_router = APIRouter(prefix="/api/commands", tags=["commands"])
read_router = APIRouter(prefix="/api/commands", tags=["commands"])

MAX_EXPIRY_S = 7 * 86400
DEFAULT_LIST_WINDOW = "-7d"


class CommandRequest(BaseModel):
    site: Ident
    agent: Ident
    target: Ident = Field(description="a source name or a device id of that agent")
    name: CommandName = Field(description="e.g. write")
    params: dict[str, ParamValue] = Field(default_factory=dict, description='e.g. {"metric": "power_limit", "value": 40}')
    expires_in_s: int = Field(default=300, ge=1, le=MAX_EXPIRY_S,
                              description="not executed if it reaches the agent later than this")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def command_point(command: contract.Command) -> Point:
    return Point(COMMAND_MEASUREMENT, {"site": command.site, "agent": command.agent, "name": command.name},
                 {"id": command.id, "target": command.target, "issued_by": command.issued_by,
                  "params": json.dumps(command.params, sort_keys=True, separators=(",", ":")),
                  "expires_ts": command.expires_ts}, command.issued_ts)


# ------------------------------------------------------------ pure functions over the stored rows

def commands_frame(series) -> pl.DataFrame:
    rows = [{"site": s.tags.get("site", ""), "agent": s.tags.get("agent", ""), "name": s.tags.get("name", ""),
             **row} for s in series for row in s.rows()]
    schema = {"time": pl.Int64, "site": pl.Utf8, "agent": pl.Utf8, "name": pl.Utf8, "id": pl.Utf8,
              "target": pl.Utf8, "issued_by": pl.Utf8, "params": pl.Utf8, "expires_ts": pl.Int64}
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows).select([pl.col(c).cast(t) for c, t in schema.items()])


def results_frame(series) -> pl.DataFrame:
    rows = [{"status": s.tags.get("status", ""), **row} for s in series for row in s.rows()]
    schema = {"time": pl.Int64, "id": pl.Utf8, "status": pl.Utf8, "message": pl.Utf8, "data": pl.Utf8}
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows).select([pl.col(c).cast(t) for c, t in schema.items()])


def with_outcome(commands: pl.DataFrame, results: pl.DataFrame, now_ms: int) -> list[dict]:
    """Each command with its newest result; ``sent`` while the agent has not answered,
    ``unanswered`` once it expired without an answer."""
    latest = (results.sort("time").group_by("id").agg(pl.all().last())
              .rename({"time": "answered_ts"}))
    joined = commands.join(latest, on="id", how="left").sort("time", descending=True)
    out = []
    for row in joined.to_dicts():
        status = row["status"] or ("unanswered" if row["expires_ts"] < now_ms else "sent")
        out.append({"id": row["id"], "site": row["site"], "agent": row["agent"], "target": row["target"],
                    "name": row["name"], "params": json.loads(row["params"] or "{}"), "issued_by": row["issued_by"],
                    "issued_ts": row["time"], "expires_ts": row["expires_ts"], "status": status,
                    "message": row["message"] or "", "answered_ts": row["answered_ts"],
                    "data": json.loads(row["data"]) if row["data"] else {}})
    return out


# ------------------------------------------------------------ routes

class CommandUnavailable(RuntimeError):
    """A command cannot be sent: no MQTT connection in this process, or the agent never connected."""

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.status = status


async def issue_command(state, *, site: str, agent: str, target: str, name: str, params: dict,
                        expires_in_s: int = 300, issued_by: str) -> dict:
    """Record and publish a command (``state`` = ``app.state``); what ``POST /api/commands`` answers.

    Domain code (a job choosing a site's charging target) sends commands through this too, so every
    command is in the same audit list whoever issued it. Raises :class:`CommandUnavailable`."""
    tracker = state.status
    if tracker is None:
        raise CommandUnavailable("this API runs without an MQTT connection; commands cannot be sent")
    if (site, agent) not in tracker.snapshot():
        raise CommandUnavailable(f"agent {agent!r} at site {site!r} has never connected: the broker "
                                 f"holds no session that could keep a command for it", status=404)
    now = _now_ms()
    command = contract.Command(id=uuid.uuid4().hex, site=site, agent=agent, target=target, name=name,
                               params=params, issued_ts=now, expires_ts=now + int(expires_in_s) * 1000,
                               issued_by=issued_by)
    # Recorded first: a command the broker took must never be missing from the audit list.
    await state.reader.write_points([command_point(command)])
    problem = await asyncio.to_thread(tracker.publish, contract.command_topic(site, agent, name),
                                      contract.encode(command))
    if problem is not None:
        raise CommandUnavailable(f"command {command.id} recorded but not sent: {problem}")
    return {"id": command.id, "status": "sent", "issued_ts": command.issued_ts, "expires_ts": command.expires_ts}


@write_router.post("", status_code=202, summary="Send a command to an edge agent (QoS 1, kept for an offline agent)")
async def send_command(request: Request, body: CommandRequest) -> dict:
    principal = getattr(request.state, "principal", None)
    try:
        return await issue_command(request.app.state, site=body.site, agent=body.agent, target=body.target,
                                   name=body.name, params=body.params, expires_in_s=body.expires_in_s,
                                   issued_by=principal.name if principal else "local (auth off)")
    except CommandUnavailable as exc:
        raise HTTPException(exc.status, str(exc)) from None


async def _stored(reader, where_commands: str, where_results: str, start_ms: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    since = f"time >= {start_ms}ms"
    commands, results = await reader.query(
        f'SELECT "id","target","issued_by","params","expires_ts" FROM "{COMMAND_MEASUREMENT}" '
        f'WHERE {since}{where_commands} GROUP BY "site","agent","name"',
        f'SELECT "id","message","data" FROM "{RESULT_MEASUREMENT}" WHERE {since}{where_results} GROUP BY "status"')
    return commands_frame(commands), results_frame(results)


@read_router.get("", summary="Commands sent (newest first) with their latest outcome")
async def list_commands(request: Request, site: str | None = Query(None), agent: str | None = Query(None),
                        start: str = Query(DEFAULT_LIST_WINDOW, description="RFC3339 or relative, e.g. -7d"),
                        limit: int = Query(200, ge=1, le=5000)) -> dict:
    now = _now_ms()
    start_ms = params.parse_time_ms("start", start, now)
    conditions = "".join(f' AND "{tag}" = {quote_string(params.check_id(tag, value))}'
                         for tag, value in (("site", site), ("agent", agent)) if value)
    commands, results = await _stored(request.app.state.reader, conditions, "", start_ms)
    return {"now": now, "commands": with_outcome(commands, results, now)[:limit]}


@read_router.get("/{command_id}", summary="One command and every status the agent reported for it")
async def get_command(request: Request, command_id: str, start: str = Query(DEFAULT_LIST_WINDOW)) -> dict:
    now = _now_ms()
    command_id = params.check_id("command_id", command_id)
    condition = f' AND "id" = {quote_string(command_id)}'
    commands, results = await _stored(request.app.state.reader, condition, condition,
                                      params.parse_time_ms("start", start, now))
    found = with_outcome(commands, results, now)
    if not found:
        raise HTTPException(404, f"no command {command_id!r} since {start}")
    history = [{"status": r["status"], "ts": r["time"], "message": r["message"] or "",
                "data": json.loads(r["data"]) if r["data"] else {}} for r in results.sort("time").to_dicts()]
    return {**found[0], "history": history}
