"""/api/v1/analytics: activity counts, floor heatmaps, period reports, Parquet/CSV export."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import Annotated, Literal

from litestar import get
from litestar.background_tasks import BackgroundTask
from litestar.controller import Controller
from litestar.params import FromQuery, QueryParameter
from litestar.response import File

from wdp.schemas import FloorGrid, Heatmap
from wdp.serve import analytics_queries
from wdp.serve.api_types import ActivitySummary, AnalyticsReport
from wdp.serve.controllers.pose import time_range
from wdp.serve.errors import unprocessable
from wdp.serve.params import Epoch, OptEpoch, OptTrackId, OptZoneId
from wdp.serve.security import ANALYTICS_READ
from wdp.serve.services import ServicesDep
from wdp.store import export as store_export
from wdp.store import queries

MAX_HEATMAP_CELLS = 250_000
EXPORT_MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


class AnalyticsController(Controller):
    path = "/api/v1/analytics"
    tags = ["analytics"]
    opt = {"scopes": (ANALYTICS_READ,)}

    @get("/activity", operation_id="getActivity", summary="Person-frames per activity (and zone occupancy)")
    async def activity(
        self,
        services: ServicesDep,
        start_time: Epoch,
        end_time: Epoch,
        zone_id: OptZoneId = None,
        bucket_s: Annotated[float, QueryParameter(ge=1.0, le=86400.0)] = 300.0,
    ) -> ActivitySummary:
        time_range(start_time, end_time)
        total, counts = await services.db(analytics_queries.activity_counts, start_time, end_time, zone_id)
        occupancy = None
        if zone_id is not None:
            if (end_time - start_time) / bucket_s > 100_000:
                raise unprocessable("too many buckets: widen bucket_s or narrow the range (max 100000)")
            occupancy = await services.db(queries.zone_occupancy_series, zone_id, start_time, end_time, bucket_s)
        return ActivitySummary(
            start=start_time,
            end=end_time,
            zone_id=zone_id,
            person_frames=total,
            activities=counts,
            occupancy=occupancy,
        )

    @get("/heatmaps", operation_id="getHeatmap", summary="Person-frames per floor cell")
    async def heatmap(
        self,
        services: ServicesDep,
        start_time: Epoch,
        end_time: Epoch,
        x0: Annotated[float, QueryParameter(ge=-1e4, le=1e4)] = 0.0,
        y0: Annotated[float, QueryParameter(ge=-1e4, le=1e4)] = 0.0,
        cell_m: Annotated[float, QueryParameter(ge=0.01, le=100.0, description="Cell size in metres")] = 0.5,
        nx: Annotated[int, QueryParameter(ge=1, le=1000)] = 20,
        ny: Annotated[int, QueryParameter(ge=1, le=1000)] = 20,
        zone_id: OptZoneId = None,
        person_id: OptTrackId = None,
    ) -> Heatmap:
        time_range(start_time, end_time)
        if nx * ny > MAX_HEATMAP_CELLS:
            raise unprocessable(f"nx * ny must be at most {MAX_HEATMAP_CELLS}")
        grid = FloorGrid(x0=x0, y0=y0, cell_m=cell_m, nx=nx, ny=ny)
        return await services.db(queries.heatmap, grid, start_time, end_time, zone_id=zone_id, track_id=person_id)

    @get("/reports", operation_id="getReport", summary="Totals of a period: frames, persons, events, zones")
    async def report(self, services: ServicesDep, start_time: Epoch, end_time: Epoch) -> AnalyticsReport:
        time_range(start_time, end_time)
        totals = await services.db(analytics_queries.report_totals, start_time, end_time)
        _, counts = await services.db(analytics_queries.activity_counts, start_time, end_time)
        report_id = hashlib.sha256(f"{start_time!r}:{end_time!r}".encode()).hexdigest()[:16]
        return AnalyticsReport(
            report_id=report_id,
            generated_at=time.time(),
            start=start_time,
            end=end_time,
            activities=counts,
            **totals,
        )

    @get(
        "/export",
        operation_id="exportHistory",
        summary="Download history as Parquet or CSV",
        response_description="The export file",
    )
    async def export(
        self,
        services: ServicesDep,
        table: FromQuery[Literal["persons", "frames", "events", "zone_occupancy"]] = "persons",
        format: FromQuery[Literal["parquet", "csv"]] = "parquet",
        start_time: OptEpoch = None,
        end_time: OptEpoch = None,
        person_id: OptTrackId = None,
        zone_id: OptZoneId = None,
    ) -> File:
        if start_time is not None and end_time is not None:
            time_range(start_time, end_time)
        if person_id is not None and table not in ("persons", "events"):
            raise unprocessable(f"person_id does not apply to {table}")
        if zone_id is not None and table == "frames":
            raise unprocessable("zone_id does not apply to frames")
        fd, path = tempfile.mkstemp(prefix="wdp-export-", suffix=f".{format}", dir=services.settings.export_dir)
        os.close(fd)
        try:
            rows = await services.db(
                store_export.export,
                path,
                table,
                start=start_time,
                end=end_time,
                track_id=person_id,
                zone_id=zone_id,
                format=format,
            )
        except BaseException:
            os.unlink(path)
            raise
        return File(
            path=path,
            filename=f"wdp-{table}.{format}",
            media_type=EXPORT_MEDIA_TYPES[format],
            headers={"X-Export-Rows": str(rows)},
            background=BackgroundTask(os.unlink, path),
        )
