"""/api/v1/sensing: training-free motion / presence / breathing (wdp.sensing), per router and per zone.

A router's states carry ``router_id``, a zone's (the routers placed in it, config ``sensing.zones``) carry
``zone_id``; ``current`` lists both, ``history`` filters on one, ``routers/{id}`` adds the link's health.
"""

from __future__ import annotations

import time
from typing import Annotated

from litestar import get
from litestar.controller import Controller
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from wdp.serve.api_types import SensingCurrent, SensingHistoryPage, SensingRouterDetails
from wdp.serve.controllers.pose import time_range
from wdp.serve.errors import unprocessable
from wdp.serve.params import Epoch, Limit, OptZoneId, Skip
from wdp.serve.security import POSE_READ
from wdp.serve.services import ServicesDep
from wdp.store import sensing as store_sensing

OptRouterId = Annotated[str | None, QueryParameter(max_length=64, description="Router id (a link's states)")]
RouterIdPath = Annotated[str, PathParameter(max_length=64, description="Router id")]


class SensingController(Controller):
    path = "/api/v1/sensing"
    tags = ["sensing"]
    opt = {"scopes": (POSE_READ,)}

    @get("/current", operation_id="getCurrentSensing", summary="Latest sensing state of every router and zone")
    async def current(self, services: ServicesDep) -> SensingCurrent:
        states = services.engine.sensing_current()
        return SensingCurrent(
            server_time=time.time(),
            routers=[s for s in states if s.router_id is not None],
            zones=[s for s in states if s.router_id is None and s.zone_id is not None],
        )

    @get(
        "/history",
        operation_id="getSensingHistory",
        summary="Stored sensing states in [start_time, end_time)",
        description="One state per router and per zone per second, oldest first. `router_id` selects one "
        "router's states, `zone_id` one zone's combined states (give one of them, or neither for all).",
    )
    async def history(
        self,
        services: ServicesDep,
        start_time: Epoch,
        end_time: Epoch,
        router_id: OptRouterId = None,
        zone_id: OptZoneId = None,
        limit: Limit = 100,
        skip: Skip = 0,
    ) -> SensingHistoryPage:
        time_range(start_time, end_time)
        if router_id is not None and zone_id is not None:
            raise unprocessable(
                "give router_id or zone_id, not both: a router's states and a zone's are separate rows",
                router_id=router_id,
                zone_id=zone_id,
            )

        def page(con) -> SensingHistoryPage:  # type: ignore[no-untyped-def]
            where = {"router_id": router_id, "zone_id": zone_id}
            states = store_sensing.history(con, start_time, end_time, limit=limit, offset=skip, **where)
            total = store_sensing.count(con, start_time, end_time, **where)
            return SensingHistoryPage(states=states, total=total, limit=limit, skip=skip)

        return await services.db(page)

    @get(
        "/routers/{router_id:str}",
        operation_id="getSensingRouter",
        raises=[NotFoundException],
        summary="A router's latest sensing state and the health of its sensing link",
    )
    async def router(self, services: ServicesDep, router_id: RouterIdPath) -> SensingRouterDetails:
        state = next((s for s in services.engine.sensing_current() if s.router_id == router_id), None)
        link = next((x for x in services.engine.sensing_links() if x.router_id == router_id), None)
        if state is None and link is None:
            raise NotFoundException(f"no sensing data for router {router_id!r}")
        return SensingRouterDetails(router_id=router_id, state=state, link=link)
