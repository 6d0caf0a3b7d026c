"""Baseline for bench_api.py: GET /api/v1/pose/current as a minimal FastAPI + pydantic app, the way the seed
writes it (pydantic models, HTTPBearer + pyjwt per request, the same zone/confidence filters, the same frame
content refreshed at 30 FPS). Run by the benchmark under the same uvicorn settings as the wdp app.

    uvicorn bench.fastapi_pose_baseline:app  (needs: pip install fastapi)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from wdp.serve.demo_feed import synthetic_frame

SECRET = os.environ.get("WDP_JWT_SECRET", "")
PERSONS = int(os.environ.get("BENCH_PERSONS", "3"))
FPS = float(os.environ.get("BENCH_FPS", "30"))


class Person(BaseModel):
    track_id: int
    keypoints: list[list[float]] = Field(min_length=17, max_length=17)
    box: tuple[float, float, float, float]
    confidence: float
    zone_ids: list[str] = []
    activity: str | None = None
    position: tuple[float, float] | None = None


class PoseFrame(BaseModel):
    frame_id: int
    timestamp: float
    source: str
    persons: list[Person] = []
    router_ids: list[str] = []
    latency_ms: float = 0.0


state: dict[str, PoseFrame] = {}


def _frame(frame_id: int, t: float) -> PoseFrame:
    import msgspec

    return PoseFrame.model_validate(msgspec.to_builtins(synthetic_frame(frame_id, t, PERSONS)))


async def _feed() -> None:
    frame_id, t0 = 0, asyncio.get_running_loop().time()
    while True:
        frame_id += 1
        state["current"] = _frame(frame_id, asyncio.get_running_loop().time() - t0)
        await asyncio.sleep(1.0 / FPS)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    state["current"] = _frame(0, 0.0)
    task = asyncio.create_task(_feed())
    yield
    task.cancel()


app = FastAPI(title="baseline", lifespan=lifespan)
bearer = HTTPBearer()


def verify(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> dict:  # noqa: B008
    try:
        claims = jwt.decode(
            credentials.credentials, SECRET, algorithms=["HS256"], audience="wdp-api", issuer="wdp"
        )
    except jwt.InvalidTokenError as exc:
        raise HTTPException(status_code=401, detail=str(exc)) from exc
    if "pose:read" not in claims.get("scopes", []) and "admin:all" not in claims.get("scopes", []):
        raise HTTPException(status_code=403, detail="requires pose:read")
    return claims


@app.get("/api/v1/pose/current", response_model=PoseFrame)
async def current(
    zone_id: str | None = Query(None, max_length=64),
    min_confidence: float = Query(0.5, ge=0.0, le=1.0),
    _: dict = Depends(verify),  # noqa: B008
) -> PoseFrame:
    frame = state["current"]
    persons = [
        p
        for p in frame.persons
        if (zone_id is None or zone_id in p.zone_ids) and p.confidence >= min_confidence
    ]
    return frame.model_copy(update={"persons": persons})
