"""WebSocket streaming: the message protocol, the fan-out hub, the /ws/v1/stream handler."""
