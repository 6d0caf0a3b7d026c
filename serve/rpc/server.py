"""``GrpcPlugin``: the gRPC server (grpc.aio) in the ASGI app's lifespan, so it shares the process, the event
loop and the Services (store, credentials, limiter, engine view) with REST, GraphQL and the WebSocket.

Health (grpc.health.v1: "" and "wdp.v1.WdpService" SERVING while up, NOT_SERVING on shutdown) and reflection
are registered beside WdpService. Message size limits (``grpc.max_message_bytes``) apply both ways: a larger
inbound message fails that call with RESOURCE_EXHAUSTED and leaves the other calls alone. TLS when both
``grpc.tls_cert_file`` and ``grpc.tls_key_file`` are set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from wdp.serve.rpc import stubs as stubs_mod
from wdp.serve.rpc.service import Malformed, WdpServicer
from wdp.serve.services import Services

log = logging.getLogger("wdp.serve.rpc")

SERVICE_NAME = "wdp.v1.WdpService"


def tolerant_deserializer(cls: Any) -> Callable[[bytes], Any]:
    """``cls.FromString`` that hands the servicer a ``Malformed`` instead of raising: grpcio would answer a
    deserializer's exception with UNKNOWN and log a traceback; the servicer answers INVALID_ARGUMENT (unary,
    server streaming) or counts and skips the message (IngestCsi)."""

    def deserialize(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return Malformed(f"malformed {cls.DESCRIPTOR.full_name}: {exc}")

    return deserialize


def passthrough_serializer(cls: Any) -> Callable[[Any], bytes]:
    """``SerializeToString``, except that bytes go out as they are: StreamPoses serializes a frame once per
    filter set and hands the same bytes to every stream that wants them."""

    def serialize(message: Any) -> bytes:
        return message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[no-any-return]

    return serialize


def method_handlers(servicer: WdpServicer, pb2: Any) -> grpc.GenericRpcHandler:
    """WdpService's handlers, as the generated add_WdpServiceServicer_to_server would register them, with
    tolerant request deserializers."""
    service = pb2.DESCRIPTOR.services_by_name["WdpService"]
    factories = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    handlers = {}
    for m in service.methods:
        factory = factories[(m.client_streaming, m.server_streaming)]
        handlers[m.name] = factory(
            getattr(servicer, m.name),
            request_deserializer=tolerant_deserializer(getattr(pb2, m.input_type.name)),
            response_serializer=passthrough_serializer(getattr(pb2, m.output_type.name)),
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


class GrpcPlugin(InitPluginProtocol):
    """Added by create_app when ``grpc.enabled``; ``port`` is the bound port once the app has started."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.port: int | None = None
        self.server: grpc.aio.Server | None = None
        self.servicer: WdpServicer | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        app_config.state["grpc"] = self
        return app_config

    def _build(self) -> tuple[grpc.aio.Server, health.HealthServicer]:
        cfg = self.services.settings.grpc
        stubs = stubs_mod.load()
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        self.servicer = WdpServicer(self.services, stubs)
        server.add_generic_rpc_handlers((method_handlers(self.servicer, stubs.pb2),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (
            stubs.pb2.DESCRIPTOR.services_by_name["WdpService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        address = f"{cfg.host}:{cfg.port}"
        if cfg.tls_cert_file and cfg.tls_key_file:
            creds = grpc.ssl_server_credentials(
                [(Path(cfg.tls_key_file).read_bytes(), Path(cfg.tls_cert_file).read_bytes())]
            )
            self.port = server.add_secure_port(address, creds)
        elif cfg.tls_cert_file or cfg.tls_key_file:
            raise ValueError("grpc TLS needs both grpc.tls_cert_file and grpc.tls_key_file")
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"gRPC could not bind {address}")
        return server, health_servicer

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        server, health_servicer = self._build()
        self.server = server
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        tls = " (TLS)" if self.services.settings.grpc.tls_cert_file else ""
        log.info("gRPC on %s:%d%s", self.services.settings.grpc.host, self.port, tls)
        try:
            yield
        finally:
            await health_servicer.enter_graceful_shutdown()
            await server.stop(grace=1.0)
            self.server = None
