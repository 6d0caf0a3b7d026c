"""The gRPC API (proto/wdp/v1/wdp.proto): unary queries, server-streaming poses / sensing / events with the
WebSocket's filters, client-streaming CSI ingest, health and reflection, in the ASGI server's process and
event loop (``GrpcPlugin``). Stubs are generated from the .proto at first import (``stubs.load``)."""
