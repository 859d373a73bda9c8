"""The toy's public route (served without authentication under /public/toy/) and its worker."""

import asyncio
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request

public_router = APIRouter()


@public_router.get("/beats", summary="How often the toy's worker has beaten (public)")
async def beats(request: Request) -> dict:
    return {"beats": request.app.state.toy_beats}


@asynccontextmanager
async def lifespan(app, config):
    """A domain's long-running worker: started with the services, cancelled when they stop."""
    app.state.toy_beats = 0
    app.state.toy_stopped = False

    async def beat():
        while True:
            app.state.toy_beats += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        app.state.toy_stopped = True
