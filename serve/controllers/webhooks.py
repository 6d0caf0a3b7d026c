"""/api/v1/webhooks: subscription CRUD, the outbox and delivery log, redelivery of failed deliveries.

Delivery itself (workers claiming the outbox, signing, retrying) is another component; this only edits the
subscriptions and reads/requeues the store's outbox tables. Secrets are write-only: responses say whether a
subscription has one, never what it is.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import delete, get, post, put
from litestar.controller import Controller
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from wdp.integrations.webhooks import HeaderRefusedError, UrlRefusedError, check_custom_headers
from wdp.schemas import DeliveryAttempt, WebhookSubscription, new_id
from wdp.serve.api_types import Redelivered, WebhookCreate, WebhookOut
from wdp.serve.errors import unprocessable
from wdp.serve.params import IdPath as ItemId
from wdp.serve.params import Limit, Skip
from wdp.serve.security import CONFIG_WRITE
from wdp.serve.services import Services, ServicesDep
from wdp.serve.validation import check_event_names, check_retry
from wdp.store import config as store_config
from wdp.store import outbox


class OutboxEntry(msgspec.Struct, kw_only=True):
    delivery_id: str
    event_id: str
    subscription_id: str
    event_type: str
    status: Literal["pending", "in_flight", "delivered", "failed"]
    attempts: int
    max_attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None = None


def _out(sub: WebhookSubscription) -> WebhookOut:
    return WebhookOut(
        id=sub.id,
        url=sub.url,
        events=list(sub.events),
        has_secret=sub.secret is not None,
        headers=dict(sub.headers),
        retry=sub.retry,
        active=sub.active,
    )


async def _subscription(services: Services, sub_id: str, data: WebhookCreate) -> WebhookSubscription:
    """The subscription a create/replace body describes, checked: events, retry policy, custom headers
    (wdp.integrations.webhooks.check_custom_headers) and the target URL with the delivery's SSRF rule
    (UrlGuard.check_target: loopback, private, link-local, metadata and numeric-trick hosts, also a hostname
    that resolves to one of those within a short timeout; a slow DNS answer does not fail the request)."""
    check_event_names(data.events, "events", wildcard=True)
    check_retry(data.retry)
    try:
        check_custom_headers(data.headers)
    except HeaderRefusedError as exc:
        raise unprocessable(str(exc), field="headers") from None
    try:
        await services.webhook_guard.check_target(data.url)
    except UrlRefusedError as exc:
        raise unprocessable(f"webhook target refused: {exc}", field="url") from None
    return WebhookSubscription(
        id=sub_id,
        url=data.url,
        events=list(data.events),
        secret=data.secret,
        headers=dict(data.headers),
        retry=data.retry,
        active=data.active,
    )


class WebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]
    opt = {"scopes": (CONFIG_WRITE,)}

    @get("/", operation_id="listWebhooks")
    async def list_webhooks(self, services: ServicesDep) -> list[WebhookOut]:
        return [_out(s) for s in await services.db(store_config.WEBHOOKS.list)]

    @post("/", operation_id="createWebhook")
    async def create_webhook(self, services: ServicesDep, data: JSONBody[WebhookCreate]) -> WebhookOut:
        sub = await _subscription(services, new_id(), data)
        return _out(await services.db(store_config.WEBHOOKS.put, sub))

    @get("/{webhook_id:str}", operation_id="getWebhook", raises=[NotFoundException])
    async def get_webhook(self, services: ServicesDep, webhook_id: ItemId) -> WebhookOut:
        sub = await services.db(store_config.WEBHOOKS.get, webhook_id)
        if sub is None:
            raise NotFoundException(f"webhook {webhook_id!r} not found")
        return _out(sub)

    @put(
        "/{webhook_id:str}",
        operation_id="replaceWebhook",
        raises=[NotFoundException],
        summary="Replace a subscription (an omitted secret keeps the current one)",
    )
    async def replace_webhook(
        self, services: ServicesDep, webhook_id: ItemId, data: JSONBody[WebhookCreate]
    ) -> WebhookOut:
        current = await services.db(store_config.WEBHOOKS.get, webhook_id)
        if current is None:
            raise NotFoundException(f"webhook {webhook_id!r} not found")
        sub = await _subscription(services, webhook_id, data)
        if data.secret is None and current.secret is not None:
            sub = msgspec.structs.replace(sub, secret=current.secret)
        return _out(await services.db(store_config.WEBHOOKS.put, sub))

    @delete("/{webhook_id:str}", operation_id="deleteWebhook", raises=[NotFoundException])
    async def delete_webhook(self, services: ServicesDep, webhook_id: ItemId) -> None:
        if not await services.db(store_config.WEBHOOKS.delete, webhook_id):
            raise NotFoundException(f"webhook {webhook_id!r} not found")

    @get(
        "/{webhook_id:str}/deliveries",
        operation_id="listWebhookDeliveries",
        raises=[NotFoundException],
        summary="Delivery attempts of a subscription, newest first",
    )
    async def deliveries(
        self, services: ServicesDep, webhook_id: ItemId, limit: Limit = 100, skip: Skip = 0
    ) -> list[DeliveryAttempt]:
        if await services.db(store_config.WEBHOOKS.get, webhook_id) is None:
            raise NotFoundException(f"webhook {webhook_id!r} not found")
        return await services.db(outbox.delivery_log, subscription_id=webhook_id, limit=limit, offset=skip)

    @get(
        "/{webhook_id:str}/outbox",
        operation_id="listWebhookOutbox",
        raises=[NotFoundException],
        summary="Queued, delivered and failed deliveries of a subscription",
    )
    async def outbox_items(
        self,
        services: ServicesDep,
        webhook_id: ItemId,
        status: FromQuery[Literal["pending", "in_flight", "delivered", "failed"] | None] = None,
        limit: Limit = 100,
        skip: Skip = 0,
    ) -> list[OutboxEntry]:
        if await services.db(store_config.WEBHOOKS.get, webhook_id) is None:
            raise NotFoundException(f"webhook {webhook_id!r} not found")
        items = await services.db(outbox.items, status=status, subscription_id=webhook_id, limit=limit, offset=skip)
        return [OutboxEntry(**{f: getattr(i, f) for f in OutboxEntry.__struct_fields__}) for i in items]

    @post(
        "/deliveries/{delivery_id:str}/redeliver",
        operation_id="redeliverWebhook",
        status_code=HTTP_200_OK,
        raises=[NotFoundException],
        summary="Give a failed delivery a fresh set of attempts",
    )
    async def redeliver(self, services: ServicesDep, delivery_id: ItemId) -> Redelivered:
        if not await services.db(outbox.requeue, delivery_id):
            raise NotFoundException(f"no failed delivery {delivery_id!r}")
        return Redelivered(delivery_id=delivery_id)
