"""The gRPC API against a real server (the app under uvicorn on 127.0.0.1 with grpc.enabled, ports chosen at
run time) with grpcio clients: unary queries, streaming poses/events with the WebSocket's filters, CSI pushed
into a real engine (source=push), health and reflection, UNAUTHENTICATED / PERMISSION_DENIED, malformed and
oversize messages refused without harming other streams, TLS."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from api_support import T0, history_frames, live_frame, make_settings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from live_server import LiveServer, live_server
from tls_certs import make_certs

from wdp.schemas import PersonEnteredZone, SystemStarted
from wdp.serve import StoreBackedEngineView, create_app
from wdp.serve.rpc import stubs
from wdp.store import Store

pb, rpc, _ = stubs.load()
MAX_MESSAGE = 64 * 1024


@pytest.fixture
def server() -> Iterator[tuple[LiveServer, StoreBackedEngineView]]:
    with Store(":memory:") as s:
        with s.writer() as w:
            for f in history_frames():
                w.append(f)
        view = StoreBackedEngineView(s)
        settings = make_settings(grpc={"enabled": True, "port": 0, "max_message_bytes": MAX_MESSAGE})
        app = create_app(settings, engine_view=view, store=s)
        with live_server(app) as srv:
            yield srv, view


def md(srv: LiveServer, *scopes: str) -> tuple[tuple[str, str], ...]:
    tok = srv.app.state["services"].tokens.issue("alice", scopes)[0]
    return (("authorization", f"Bearer {tok}"),)


@pytest.fixture
def channel(server: tuple[LiveServer, StoreBackedEngineView]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server[0].grpc_port}") as ch:
        yield ch


def test_unary_queries(server: tuple[LiveServer, StoreBackedEngineView], channel: grpc.Channel) -> None:
    srv, _ = server
    stub = rpc.WdpServiceStub(channel)
    meta = md(srv, "pose:read", "system:read")
    frame = stub.GetCurrentPose(pb.GetCurrentPoseRequest(filters=pb.Filters(min_confidence=0.5)), metadata=meta)
    assert frame.frame_id == 199 and [p.track_id for p in frame.persons] == [1]
    assert len(frame.persons[0].keypoints) == 17 and frame.persons[0].HasField("x")
    page = stub.GetPoseHistory(
        pb.GetPoseHistoryRequest(start_time=T0, end_time=T0 + 100, limit=5, skip=2, filters=pb.Filters(person_id=2)),
        metadata=meta,
    )
    rest = httpx.get(
        f"{srv.base}/api/v1/pose/history",
        params={"start_time": T0, "end_time": T0 + 100, "person_id": 2, "limit": 5, "skip": 2},
        headers={"Authorization": meta[0][1]},
    ).json()
    assert page.total == rest["total"] == 150
    assert [f.frame_id for f in page.frames] == [f["frame_id"] for f in rest["frames"]]
    status = stub.GetSystemStatus(pb.GetSystemStatusRequest(), metadata=meta)
    assert status.running and status.frames_total == 0
    with pytest.raises(grpc.RpcError) as bad:
        stub.GetPoseHistory(pb.GetPoseHistoryRequest(start_time=T0, end_time=T0 - 1), metadata=meta)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_auth_failures(server: tuple[LiveServer, StoreBackedEngineView], channel: grpc.Channel) -> None:
    srv, _ = server
    stub = rpc.WdpServiceStub(channel)
    cases: list[tuple[Any, grpc.StatusCode, str]] = [
        ((), grpc.StatusCode.UNAUTHENTICATED, "authentication required"),
        ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
        ((("authorization", "Basic eDp5"),), grpc.StatusCode.UNAUTHENTICATED, "Bearer"),
        ((("x-api-key", "wdp_000000000000_secret"),), grpc.StatusCode.UNAUTHENTICATED, "invalid API key"),
        (md(srv, "system:read"), grpc.StatusCode.PERMISSION_DENIED, "pose:read"),
    ]
    for meta, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=meta)
        assert err.value.code() == code and text in err.value.details(), (meta, err.value)
    with pytest.raises(grpc.RpcError) as err:
        next(iter(stub.StreamPoses(pb.StreamPosesRequest(), metadata=md(srv, "pose:read"))))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # an API key made through REST works in metadata, and stops working once revoked through REST
    admin = {"Authorization": md(srv, "admin:all")[0][1]}
    made = httpx.post(f"{srv.base}/api/v1/auth/keys", json={"owner": "box", "scopes": ["pose:read"]}, headers=admin)
    assert made.status_code in (200, 201), made.text
    key = made.json()["api_key"]
    assert stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=(("x-api-key", key),)).frame_id == 199
    assert httpx.delete(f"{srv.base}/api/v1/auth/keys/{made.json()['key_id']}", headers=admin).status_code == 204
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=(("x-api-key", key),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _collect(stream: Any, n: int, out: queue.Queue[Any]) -> None:
    try:
        for i, item in enumerate(stream):
            out.put(item)
            if i + 1 >= n:
                break
    except grpc.RpcError as exc:
        out.put(exc)


def _publish_until(srv: LiveServer, done: threading.Event, make: Any, limit: int = 300) -> None:
    for i in range(limit):
        if done.is_set():
            return
        srv.call(make, i)
        time.sleep(0.02)


def test_stream_poses_and_events_with_filters(
    server: tuple[LiveServer, StoreBackedEngineView], channel: grpc.Channel
) -> None:
    srv, view = server
    stub = rpc.WdpServiceStub(channel)
    meta = md(srv, "stream:subscribe")
    poses: queue.Queue[Any] = queue.Queue()
    events: queue.Queue[Any] = queue.Queue()
    pose_stream = stub.StreamPoses(pb.StreamPosesRequest(filters=pb.Filters(zone_id="right")), metadata=meta)
    event_stream = stub.StreamEvents(
        pb.StreamEventsRequest(topic="zone_events", filters=pb.Filters(zone_id="left")), metadata=meta
    )
    threads = [
        threading.Thread(target=_collect, args=(pose_stream, 3, poses)),
        threading.Thread(target=_collect, args=(event_stream, 2, events)),
    ]
    for t in threads:
        t.start()
    done = threading.Event()

    def publish(i: int) -> None:
        view.publish_frame(live_frame(9000 + i))
        view.publish_event(SystemStarted(timestamp=T0, version="x", source="live"))  # not a zone event
        view.publish_event(PersonEnteredZone(timestamp=T0 + i, track_id=1, zone_id="right"))  # other zone
        view.publish_event(PersonEnteredZone(timestamp=T0 + i, track_id=7, zone_id="left"))

    pub = threading.Thread(target=_publish_until, args=(srv, done, publish))
    pub.start()
    for t in threads:
        t.join(timeout=15)
    done.set()
    pub.join()
    frames = [poses.get_nowait() for _ in range(3)]
    for f in frames:
        assert not isinstance(f, Exception), f
        assert [p.track_id for p in f.persons] == [8] and list(f.persons[0].zone_ids) == ["right"]
    got = [events.get_nowait() for _ in range(2)]
    for e in got:
        assert not isinstance(e, Exception), e
        assert e.type == "person.entered_zone" and b'"zone_id":"left"' in e.json
    pose_stream.cancel()
    event_stream.cancel()


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "wdp.v1.WdpService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"wdp.v1.WdpService", "grpc.health.v1.Health"} <= names


def test_malformed_and_oversize_refused_other_streams_live(
    server: tuple[LiveServer, StoreBackedEngineView], channel: grpc.Channel
) -> None:
    srv, view = server
    stub = rpc.WdpServiceStub(channel)
    live: queue.Queue[Any] = queue.Queue()
    stream = stub.StreamPoses(pb.StreamPosesRequest(), metadata=md(srv, "stream:subscribe"))
    reader = threading.Thread(target=_collect, args=(stream, 10_000, live))
    reader.start()
    done = threading.Event()
    pub = threading.Thread(target=_publish_until, args=(srv, done, lambda i: view.publish_frame(live_frame(i)), 2000))
    pub.start()
    try:
        assert not isinstance(live.get(timeout=10), Exception)
        raw = channel.unary_unary("/wdp.v1.WdpService/GetCurrentPose")  # bytes in, bytes out: no serializer
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff\xff\xff\xff\xff", metadata=md(srv, "pose:read"))  # a length past the end of the message
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCurrentPose(pb.GetCurrentPoseRequest(filters=pb.Filters(zone_id="z" * (MAX_MESSAGE + 10))))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # the stream opened before all this still delivers, and the server still answers
        while not live.empty():
            live.get_nowait()
        assert not isinstance(live.get(timeout=10), Exception)
        assert stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=md(srv, "pose:read")).frame_id >= 0
    finally:
        done.set()
        pub.join()
        stream.cancel()
        reader.join(timeout=10)


def test_ingest_needs_push_source_and_scope(
    server: tuple[LiveServer, StoreBackedEngineView], channel: grpc.Channel
) -> None:
    srv, _ = server
    stub = rpc.WdpServiceStub(channel)
    frame = pb.CsiFrame(router_id="r", subcarriers=1, rx=1, tx=1, re_im=[1.0, 0.0])
    with pytest.raises(grpc.RpcError) as err:
        stub.IngestCsi(iter([frame]), metadata=md(srv, "stream:subscribe"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        stub.IngestCsi(iter([frame]), metadata=md(srv, "stream:publish"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "source=push" in err.value.details()


def test_csi_pushed_into_the_engine(tmp_path: Path) -> None:
    """A capture box pushes 3 s of 100 Hz CSI over IngestCsi into an engine running source=push (sensing
    only); the engine's sensing states for that router come back over StreamSensing, and a malformed frame
    is counted and skipped without ending the push."""
    from wdp.engine.config import compose_serve_config
    from wdp.serve.engine_adapter import create_engine_app

    cfg = compose_serve_config(
        ["source=push", "detector=none", f"store.path={tmp_path / 'h.duckdb'}", "activity.detector=keypoints"]
    )
    app = create_engine_app(cfg, make_settings(grpc={"enabled": True, "port": 0}))
    with live_server(app) as srv, grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as ch:
        stub = rpc.WdpServiceStub(ch)
        meta = md(srv, "stream:publish", "stream:subscribe")
        states: queue.Queue[Any] = queue.Queue()
        sensing = stub.StreamSensing(pb.StreamSensingRequest(filters=pb.Filters(router_id="box-1")), metadata=meta)
        reader = threading.Thread(target=_collect, args=(sensing, 2, states))
        reader.start()
        rng = np.random.default_rng(0)
        t0 = time.time()

        def frames() -> Iterator[Any]:
            for i in range(300):
                x = (rng.normal(size=(52, 1, 1)) + 1j * rng.normal(size=(52, 1, 1))).astype(np.complex64)
                yield pb.CsiFrame(
                    router_id="box-1",
                    timestamp=t0 + i / 100,
                    subcarriers=52,
                    rx=1,
                    tx=1,
                    re_im=x.view(np.float32).ravel(),
                )
                if i == 150:
                    yield pb.CsiFrame(router_id="box-1", subcarriers=52, rx=1, tx=1, re_im=[1.0])  # malformed

        summary = stub.IngestCsi(frames(), metadata=meta)
        assert summary.accepted == 300 and summary.rejected == 1
        assert "needs 104" in summary.errors[0]
        reader.join(timeout=15)
        sensing.cancel()
        got = [states.get_nowait() for _ in range(2)]
        for s in got:
            assert not isinstance(s, Exception), s
            assert s.router_id == "box-1" and s.packet_rate > 0  # the pushed packets reached its sensor


def test_tls(tmp_path: Path) -> None:
    make_certs(tmp_path)
    with Store(":memory:") as s:
        with s.writer() as w:
            w.append(history_frames(1)[0])
        grpc_cfg = {
            "enabled": True,
            "port": 0,
            "tls_cert_file": str(tmp_path / "server.crt"),
            "tls_key_file": str(tmp_path / "server.key"),
        }
        app = create_app(make_settings(grpc=grpc_cfg), engine_view=StoreBackedEngineView(s), store=s)
        with live_server(app) as srv:
            creds = grpc.ssl_channel_credentials(root_certificates=(tmp_path / "ca.crt").read_bytes())
            with grpc.secure_channel(f"127.0.0.1:{srv.grpc_port}", creds) as ch:
                frame = rpc.WdpServiceStub(ch).GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=md(srv, "pose:read"))
                assert frame.frame_id == 0
            with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as plain:  # plaintext to a TLS port fails
                with pytest.raises(grpc.RpcError) as err:
                    rpc.WdpServiceStub(plain).GetCurrentPose(pb.GetCurrentPoseRequest(), timeout=3)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_rate_limit_and_revocation() -> None:
    """gRPC calls count against the caller's REST tier (RESOURCE_EXHAUSTED with retry-after), and a stream
    authenticated with an API key ends UNAUTHENTICATED once the key is revoked through REST."""
    tiers = {name: {"limit": 1000, "window_s": 60.0} for name in ("default", "premium", "streaming")}
    tiers["authenticated"] = {"limit": 3, "window_s": 60.0}
    with Store(":memory:") as s:
        with s.writer() as w:
            w.append(history_frames(1)[0])
        view = StoreBackedEngineView(s)
        settings = make_settings(grpc={"enabled": True, "port": 0}, rate_limit={"tiers": tiers})
        app = create_app(settings, engine_view=view, store=s)
        with live_server(app) as srv, grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as ch:
            stub = rpc.WdpServiceStub(ch)
            meta = md(srv, "pose:read")
            for _ in range(3):
                stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=meta)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetCurrentPose(pb.GetCurrentPoseRequest(), metadata=meta)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert int(dict(err.value.trailing_metadata())["retry-after"]) >= 1
            assert (
                httpx.get(f"{srv.base}/api/v1/pose/current", headers={"Authorization": meta[0][1]}).status_code == 429
            )

            admin = {"Authorization": md(srv, "admin:all")[0][1]}
            made = httpx.post(
                f"{srv.base}/api/v1/auth/keys", json={"owner": "box", "scopes": ["stream:subscribe"]}, headers=admin
            ).json()
            stream = stub.StreamPoses(pb.StreamPosesRequest(), metadata=(("x-api-key", made["api_key"]),))
            got: queue.Queue[Any] = queue.Queue()
            reader = threading.Thread(target=_collect, args=(stream, 100_000, got))
            reader.start()
            done = threading.Event()
            pub = threading.Thread(
                target=_publish_until, args=(srv, done, lambda i: view.publish_frame(live_frame(i)), 1000)
            )
            pub.start()
            try:
                assert not isinstance(got.get(timeout=10), Exception)
                assert httpx.delete(f"{srv.base}/api/v1/auth/keys/{made['key_id']}", headers=admin).status_code == 204
                reader.join(timeout=15)  # the stream ends: its re-check (at most a second apart) sees the revocation
                assert not reader.is_alive()
                items = []
                while not got.empty():
                    items.append(got.get_nowait())
                assert isinstance(items[-1], grpc.RpcError), items[-3:]
                assert items[-1].code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in items[-1].details()
            finally:
                done.set()
                pub.join()
                stream.cancel()
