"""A process that accepts events and delivers webhooks, for the kill -9 test.

stream DB URL ACCEPTED   submit events forever; after each submit returns (events committed), append the
                         event id to ACCEPTED (fsync'd) -- the parent SIGKILLs it mid-stream
drain DB URL -           deliver whatever the outbox holds (incl. what was in flight when the other one
                         died), print "drained <recovered in flight>" and exit
"""

from __future__ import annotations

import asyncio
import os
import sys

from integration_samples import detected

from wdp.integrations.webhooks import WebhookDispatcher, WebhookSettings
from wdp.schemas import RetryPolicy, WebhookSubscription
from wdp.store import Store, config

SETTINGS = WebhookSettings(
    concurrency=8,
    poll_interval_s=0.02,
    allowed_networks=["127.0.0.1/32"],
    lease_s=30,
    total_timeout_s=5,
    connect_timeout_s=1,
    read_timeout_s=5,
)


async def stream(store: Store, url: str, accepted_path: str) -> None:
    config.WEBHOOKS.put(
        store.cursor(),
        WebhookSubscription(
            id="sub",
            url=url,
            events=["*"],
            secret="k",
            retry=RetryPolicy(backoff_base_s=0.05, backoff_max_s=0.2),
        ),
    )
    fd = os.open(accepted_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    async with WebhookDispatcher(store, SETTINGS) as hooks:
        print("streaming", flush=True)
        seq = 0
        while True:
            batch = [detected(seq + k) for k in range(3)]
            await hooks.submit(batch)
            os.write(fd, "".join(f"{e.event_id}\n" for e in batch).encode())
            os.fsync(fd)
            seq += len(batch)
            await asyncio.sleep(0.003)


async def drain(store: Store) -> None:
    async with WebhookDispatcher(store, SETTINGS) as hooks:
        con = store.cursor()
        for _ in range(3000):
            (left,) = con.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone()
            if left == 0:
                break
            await asyncio.sleep(0.01)
        print(f"drained {hooks.stats.recovered_in_flight} {left}", flush=True)


def main() -> None:
    mode, db, url, accepted = sys.argv[1:5]
    with Store(db) as store:
        asyncio.run(stream(store, url, accepted) if mode == "stream" else drain(store))


if __name__ == "__main__":
    main()
