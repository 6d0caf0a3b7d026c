"""Fleet namespaces. Each edge has an operator-assigned ``edge_index`` (0..MAX_EDGE_INDEX, unique in the fleet,
like a node id) and a name; its routers and zones are named ``{site}/{name}/{router}``.

Frame and track ids are made fleet-unique by putting the edge index in their high bits: a frame id is
``edge_index << 52 | local`` (local ids below 2^52: the engine's id sequence, or its epoch-microsecond ids
(without a store) until the year 2112), a track id (INTEGER column)
``edge_index << 20 | local`` (2^20 local tracks per edge). Deterministic, so a message delivered twice maps to
the same rows and the store drops the repeat (frame ids are checked at flush, events have a unique id).
"""

from __future__ import annotations

import msgspec

from wdp.schemas import PoseFrame, SensingState

MAX_EDGE_INDEX = 2047  # track ids must stay below 2^31
FRAME_BITS = 52
TRACK_BITS = 20


def check_index(edge_index: int) -> int:
    if not 0 <= edge_index <= MAX_EDGE_INDEX:
        raise ValueError(f"edge_index must be in 0..{MAX_EDGE_INDEX}, got {edge_index}")
    return edge_index


def frame_id(edge_index: int, local: int) -> int:
    if not 0 <= local < 1 << FRAME_BITS:
        raise ValueError(f"local frame id {local} out of range")
    return check_index(edge_index) << FRAME_BITS | local


def track_id(edge_index: int, local: int) -> int:
    if not 0 <= local < 1 << TRACK_BITS:
        # an engine without a history store numbers tracks from the clock: an edge needs store.path (its
        # id sequences; the local DuckDB history doubles as the edge's own record)
        raise ValueError(f"local track id {local} out of range 0..2^{TRACK_BITS} (does the edge run with a store?)")
    return check_index(edge_index) << TRACK_BITS | local


def edge_of_frame(fid: int) -> int:
    return fid >> FRAME_BITS


def scoped(site: str, edge: str, ident: str) -> str:
    """``site/edge/ident`` (already scoped ids are kept)."""
    prefix = f"{site}/{edge}/"
    return ident if ident.startswith(prefix) else prefix + ident


def scope_frame(frame: PoseFrame, site: str, edge: str, edge_index: int) -> PoseFrame:
    persons = [
        msgspec.structs.replace(
            p, track_id=track_id(edge_index, p.track_id), zone_ids=[scoped(site, edge, z) for z in p.zone_ids]
        )
        for p in frame.persons
    ]
    return msgspec.structs.replace(
        frame,
        frame_id=frame_id(edge_index, frame.frame_id),
        persons=persons,
        router_ids=[scoped(site, edge, r) for r in frame.router_ids],
    )


def scope_sensing(state: SensingState, site: str, edge: str) -> SensingState:
    return msgspec.structs.replace(
        state,
        router_id=None if state.router_id is None else scoped(site, edge, state.router_id),
        zone_id=None if state.zone_id is None else scoped(site, edge, state.zone_id),
    )


def scope_event(event: msgspec.Struct, site: str, edge: str, edge_index: int) -> msgspec.Struct:
    """Track and zone ids of an event in the fleet namespace (the event id is a uuid: already unique)."""
    changes: dict[str, object] = {}
    tid = getattr(event, "track_id", None)
    if isinstance(tid, int):
        changes["track_id"] = track_id(edge_index, tid)
    zid = getattr(event, "zone_id", None)
    if isinstance(zid, str):
        changes["zone_id"] = scoped(site, edge, zid)
    rid = getattr(event, "router_id", None)
    if isinstance(rid, str):
        changes["router_id"] = scoped(site, edge, rid)
    return msgspec.structs.replace(event, **changes) if changes else event
