"""A process whose MqttBridge queues events while its broker is away, on a durable queue file: publishes
``n`` person.detected events (track ids first..first+n-1, QoS1), prints "spooled"
once they are all on disk, then either stops cleanly (``stop``) or waits to be SIGKILLed (``kill``)."""

from __future__ import annotations

import asyncio
import sys

from integration_samples import detected
from mqtt_broker import bridge_config

from wdp.integrations.mqtt import MqttBridge


async def main(port: int, queue_path: str, first: int, n: int, mode: str) -> None:
    bridge = MqttBridge(bridge_config(port, discovery=False, queue_path=queue_path, queue_sync_interval_s=0.01))
    async with bridge:
        for i in range(first, first + n):
            assert bridge.publish_event(detected(i))
        while bridge.stats.spooled < bridge.stats.restored + n:
            await asyncio.sleep(0.01)
        print("spooled", flush=True)
        if mode == "kill":
            await asyncio.sleep(3600)
        await bridge.stop(drain_timeout_s=0.2)  # the broker is down: nothing can drain


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
