"""Parameter types shared by the controllers (Litestar 2.23+ explicit query/path declarations)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter, QueryParameter

MAX_TRACK_ID = 2**31 - 1  # track_id is a DuckDB INTEGER
# Every numeric query parameter has both bounds (tests/api/test_api_input_limits.py checks): NaN and inf fall outside
# any bound, and the SQL behind each one stays in range. Times: 1970 to the end of year 9999 (the last
# instant a datetime can name; the store keeps DOUBLE epoch seconds and exports them as TIMESTAMPTZ).
MIN_EPOCH = 0.0
MAX_EPOCH = 253_402_300_799.0

_EPOCH = "Epoch seconds (UTC), 0 to 253402300799 (end of year 9999)"
Epoch = Annotated[float, QueryParameter(ge=MIN_EPOCH, le=MAX_EPOCH, description=_EPOCH)]
OptEpoch = Annotated[float | None, QueryParameter(ge=MIN_EPOCH, le=MAX_EPOCH, description=_EPOCH)]
TrackIdPath = Annotated[int, PathParameter(ge=0, le=MAX_TRACK_ID, description="Track (person) id")]
OptTrackId = Annotated[int | None, QueryParameter(ge=0, le=MAX_TRACK_ID, description="Track (person) id")]
OptZoneId = Annotated[str | None, QueryParameter(max_length=64, description="Zone id")]
IdPath = Annotated[str, PathParameter(max_length=64)]
Confidence = Annotated[float, QueryParameter(ge=0.0, le=1.0, description="Minimum person confidence")]
OptConfidence = Annotated[float | None, QueryParameter(ge=0.0, le=1.0, description="Minimum person confidence")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size")]
Skip = Annotated[int, QueryParameter(ge=0, le=10**9, description="Items to skip")]
