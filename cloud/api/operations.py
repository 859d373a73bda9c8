"""/api/dead-letters: what the ingest refused, newest first, with totals per reason (scope ops:read)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request

router = APIRouter(prefix="/api", tags=["operations"])


@router.get("/dead-letters", summary="The newest dead letters (per reason, bounded) and the total per reason")
async def dead_letters(request: Request, reason: str | None = Query(None, pattern=r"^[a-z_]{1,64}$"),
                       limit: int = Query(100, ge=1, le=1000)) -> dict:
    collector = request.app.state.dead_letters
    if collector is None:
        raise HTTPException(503, "this API process does not collect dead letters (api.dead_letters.enabled)")
    return {"totals": collector.store.totals(), "letters": collector.store.letters(reason, limit),
            "kept_per_reason": collector.store.keep, "collector_connected": collector.connected.is_set()}
