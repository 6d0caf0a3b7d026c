"""/api/v1/pose: the current frame, history pages, one person's summary and trajectory, zone occupancy."""

from __future__ import annotations

import math
from typing import Annotated

from litestar import get
from litestar.controller import Controller
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from wdp.schemas import PoseFrame
from wdp.serve.api_types import (
    PersonDetails,
    PoseHistoryPage,
    Trajectory,
    ZoneOccupancy,
    ZoneOccupancySeries,
    ZonesOccupancy,
)
from wdp.serve.errors import unprocessable
from wdp.serve.params import (
    Confidence,
    Epoch,
    Limit,
    OptConfidence,
    OptTrackId,
    OptZoneId,
    Skip,
    TrackIdPath,
)
from wdp.serve.security import POSE_READ
from wdp.serve.services import ServicesDep
from wdp.serve.stream.hub import filter_frame
from wdp.serve.stream.protocol import Filters
from wdp.store import config as store_config
from wdp.store import dense as store_dense
from wdp.store import queries

Dense = Annotated[
    bool,
    QueryParameter(
        description="Add each person's DensePose output (`dense`: body-part labels run-length encoded and U/V "
        "quantized to uint8 at the model's map resolution, see the DensePose schema); without it persons have "
        "no `dense` key"
    ),
]


def time_range(start: float, end: float) -> None:
    if not (math.isfinite(start) and math.isfinite(end)):  # the Epoch bounds reject these first
        raise unprocessable("start_time and end_time must be finite numbers", start_time=str(start), end_time=str(end))
    if end < start:
        raise unprocessable("end_time must not be before start_time", start_time=start, end_time=end)


class PoseController(Controller):
    path = "/api/v1/pose"
    tags = ["pose"]
    opt = {"scopes": (POSE_READ,)}

    @get(
        "/current",
        operation_id="getCurrentPose",
        raises=[NotFoundException],
        summary="The most recent pose frame",
        description="Persons below `min_confidence` or outside `zone_id` are removed from the frame. "
        "`dense=true` returns the latest frame with DensePose output (404 when the server makes none: "
        "engine.dense off).",
    )
    async def current(
        self,
        services: ServicesDep,
        zone_id: OptZoneId = None,
        min_confidence: Confidence = 0.5,
        dense: Dense = False,
    ) -> PoseFrame:
        if dense:
            frame = services.engine.current_dense_frame()
            if frame is None:
                raise NotFoundException("no DensePose data available (engine.dense is off, or no frame yet)")
        else:
            frame = services.engine.current_frame()
        if frame is None:
            raise NotFoundException("no pose data available")
        return filter_frame(frame, Filters(zone_id=zone_id, min_confidence=min_confidence or None))

    @get(
        "/history",
        operation_id="getPoseHistory",
        summary="Stored frames in [start_time, end_time)",
        description="`dense=true` adds the DensePose output stored with the frames (only kept when the server "
        "runs with store.dense).",
    )
    async def history(
        self,
        services: ServicesDep,
        start_time: Epoch,
        end_time: Epoch,
        person_id: OptTrackId = None,
        zone_id: OptZoneId = None,
        min_confidence: OptConfidence = None,
        limit: Limit = 100,
        skip: Skip = 0,
        dense: Dense = False,
    ) -> PoseHistoryPage:
        time_range(start_time, end_time)

        def page(con) -> PoseHistoryPage:  # type: ignore[no-untyped-def]
            filters = {"track_id": person_id, "zone_id": zone_id, "min_confidence": min_confidence}
            frames = queries.pose_history(con, start_time, end_time, limit=limit, offset=skip, **filters)
            if dense:
                frames = store_dense.attach(con, frames)
            total = queries.count_history(con, start_time, end_time, **filters)
            return PoseHistoryPage(frames=frames, total=total, limit=limit, skip=skip)

        return await services.db(page)

    @get(
        "/persons/{person_id:int}",
        operation_id="getPerson",
        raises=[NotFoundException],
        summary="What the history knows about one person (track)",
    )
    async def person(
        self,
        services: ServicesDep,
        person_id: TrackIdPath,
        include_trajectory: Annotated[bool, QueryParameter(description="Add the floor trajectory")] = False,
        bucket_s: Annotated[
            float | None,
            QueryParameter(ge=0.01, le=86400.0, description="Average the trajectory per bucket of this many seconds"),
        ] = None,
    ) -> PersonDetails:
        summary = await services.db(queries.person_summary, person_id)
        if summary is None:
            raise NotFoundException(f"person {person_id} not found")
        trajectory = None
        if include_trajectory:
            cols = await services.db(queries.trajectory_arrays, person_id, bucket_s=bucket_s)
            trajectory = Trajectory(timestamp=cols["timestamp"].tolist(), x=cols["x"].tolist(), y=cols["y"].tolist())
        return PersonDetails(person=summary, trajectory=trajectory)

    @get("/zones", operation_id="getZonesOccupancy", summary="Persons per configured zone in the current frame")
    async def zones(self, services: ServicesDep) -> ZonesOccupancy:
        zones = await services.db(store_config.ZONES.list)
        frame = services.engine.current_frame()
        members: dict[str, list[int]] = {}
        if frame is not None:
            for person in frame.persons:
                for zone_id in person.zone_ids:
                    members.setdefault(zone_id, []).append(person.track_id)
        out = []
        for zone in zones:
            ids = sorted(members.get(zone.id, []))
            out.append(
                ZoneOccupancy(
                    zone_id=zone.id,
                    name=zone.name,
                    count=len(ids),
                    track_ids=ids,
                    max_occupancy=zone.max_occupancy,
                    over_capacity=zone.max_occupancy is not None and len(ids) > zone.max_occupancy,
                    restricted=zone.restricted,
                )
            )
        return ZonesOccupancy(
            timestamp=frame.timestamp if frame else None,
            frame_id=frame.frame_id if frame else None,
            zones=out,
        )

    @get(
        "/zones/{zone_id:str}/occupancy",
        operation_id="getZoneOccupancyHistory",
        raises=[NotFoundException],
        summary="Mean and peak persons in a zone per time bucket",
    )
    async def zone_occupancy(
        self,
        services: ServicesDep,
        zone_id: Annotated[str, PathParameter(max_length=64)],
        start_time: Epoch,
        end_time: Epoch,
        bucket_s: Annotated[float, QueryParameter(ge=1.0, le=86400.0)] = 60.0,
    ) -> ZoneOccupancySeries:
        time_range(start_time, end_time)
        if (end_time - start_time) / bucket_s > 100_000:
            raise unprocessable("too many buckets: widen bucket_s or narrow the range (max 100000)")
        if await services.db(store_config.ZONES.get, zone_id) is None:
            raise NotFoundException(f"zone {zone_id!r} not found")
        buckets = await services.db(queries.zone_occupancy_series, zone_id, start_time, end_time, bucket_s)
        return ZoneOccupancySeries(zone_id=zone_id, start=start_time, end=end_time, bucket_s=bucket_s, buckets=buckets)
