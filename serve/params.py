"""Parameter types shared by the controllers (Litestar 2.23+ explicit query/path declarations)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

MAX_TRACK_ID = 2**31 - 1  # track_id is a DuckDB INTEGER

Epoch = Annotated[float, QueryParameter(description="Epoch seconds (UTC)")]
OptEpoch = Annotated[float | None, QueryParameter(description="Epoch seconds (UTC)")]
TrackIdPath = Annotated[int, PathParameter(ge=0, le=MAX_TRACK_ID, description="Track (person) id")]
OptTrackId = Annotated[int | None, QueryParameter(ge=0, le=MAX_TRACK_ID, description="Track (person) id")]
OptZoneId = Annotated[str | None, QueryParameter(max_length=64, description="Zone id")]
IdPath = Annotated[str, PathParameter(max_length=64)]
Confidence = Annotated[float, QueryParameter(ge=0.0, le=1.0, description="Minimum person confidence")]
OptConfidence = Annotated[float | None, QueryParameter(ge=0.0, le=1.0, description="Minimum person confidence")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size")]
Skip = Annotated[int, QueryParameter(ge=0, le=10**9, description="Items to skip")]
