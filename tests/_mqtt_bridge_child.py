"""A process running an MqttBridge (for the last-will test, which SIGKILLs it): connects, publishes status
"running", prints "ready" once that is acknowledged, then idles."""

from __future__ import annotations

import asyncio
import sys

from wdp.integrations.mqtt import MqttBridge, MqttConfig


async def main(port: int, client_id: str) -> None:
    bridge = MqttBridge(
        MqttConfig(
            host="127.0.0.1",
            port=port,
            client_id=client_id,
            keepalive_s=5,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
        )
    )
    async with bridge:
        bridge.publish_status("running", {"fps": 10.0})
        await bridge.wait_connected(5)
        assert await bridge.flush(5)
        print("ready", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
