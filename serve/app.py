"""App factory: ``create_app(settings, engine_view, store)``.

    app = create_app(load_settings(cfg.api), engine_view=engine, store=store)   # the engine binds here
    uvicorn wdp.serve.app:create_app_from_env --factory      # API on its own (store-backed)

Without an engine view the app serves a StoreBackedEngineView over the store; without a store it opens
``settings.store_path`` in its lifespan and closes it on shutdown. A store handed in is the caller's to
close (it is opened in the lifespan if it is not open yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.plugins import PluginProtocol

from wdp.integrations.webhooks import UrlGuard
from wdp.serve.dashboard.plugin import DashboardPlugin
from wdp.serve.engine_view import EngineView, StoreBackedEngineView
from wdp.serve.log_sanitizer import install_log_sanitizer
from wdp.serve.metrics import ApiMetrics
from wdp.serve.openapi import StructDefaultsSchemaPlugin
from wdp.serve.plugin import WdpApiPlugin
from wdp.serve.ratelimit import RateLimiter
from wdp.serve.security import ApiKeyVerifier, CredentialRegistry, SecretHasher, TokenService
from wdp.serve.services import Services
from wdp.serve.settings import ServeSettings, check_settings, load_settings, with_state_secret
from wdp.serve.stream.hub import StreamHub
from wdp.serve.versioning import Versioning
from wdp.store import Store


def build_services(settings: ServeSettings, engine_view: EngineView, store: Store) -> Services:
    metrics = ApiMetrics(engine_view.status)
    hasher = SecretHasher(settings.auth)
    return Services(
        settings=settings,
        store=store,
        engine=engine_view,
        tokens=TokenService(settings.auth, settings.rate_limit),
        hasher=hasher,
        api_keys=ApiKeyVerifier(store, hasher, settings.auth, settings.rate_limit),
        limiter=RateLimiter(settings.rate_limit),
        versioning=Versioning(settings.versioning),
        metrics=metrics,
        hub=StreamHub(engine_view, settings.stream, metrics),
        credentials=CredentialRegistry(store),
    )


def create_app(
    settings: ServeSettings | None = None,
    engine_view: EngineView | None = None,
    store: Store | None = None,
    plugins: Sequence[PluginProtocol] = (),
    webhook_guard: UrlGuard | None = None,
) -> Litestar:
    """The Litestar app. Raises InsecureSettingsError for a configuration that must not serve. With no JWT
    secret given, the one kept in the state directory is used (made on the first start).
    ``plugins`` come after the API's own (their lifespans enter once the store is open and the stream hub
    is subscribed, and exit first). ``webhook_guard`` checks webhook URLs at create/update; pass the delivery's
    (``UrlGuard(webhooks.allowed_networks)``) so both apply one rule."""
    settings = settings if settings is not None else load_settings()
    settings = with_state_secret(settings, store.path if store is not None else settings.store_path)
    check_settings(settings)
    install_log_sanitizer()  # process-wide: request text and credentials reach no log line unescaped
    owns_store = store is None
    store = store if store is not None else Store(settings.store_path)
    engine = engine_view if engine_view is not None else StoreBackedEngineView(store)
    services = build_services(settings, engine, store)
    if webhook_guard is not None:  # else refuse private/loopback targets like a delivery with no allowed_networks
        services.webhook_guard = webhook_guard
    extra: list[PluginProtocol] = []
    if settings.dashboard.enabled or settings.visualization.enabled:
        extra.append(DashboardPlugin(services))
    if settings.graphql.enabled:
        from wdp.serve.graphql.plugin import GraphQLPlugin  # strawberry is imported only when GraphQL is on

        extra.append(GraphQLPlugin(services))
    if settings.grpc.enabled:
        from wdp.serve.rpc.server import GrpcPlugin

        extra.append(GrpcPlugin(services))
    # The schema plugin must precede Litestar's built-in ones, which are appended after these.
    # request_max_body_size goes here: Litestar 2.25 ignores the value an init plugin sets on AppConfig.
    return Litestar(
        plugins=[
            StructDefaultsSchemaPlugin(),
            WdpApiPlugin(services, owns_store=owns_store),
            *extra,
            *plugins,
        ],
        request_max_body_size=settings.request_max_body_size,
    )


def create_app_from_config(cfg: Any) -> Litestar:
    """From the Hydra ``api`` node (plus environment overrides)."""
    return create_app(load_settings(cfg))


def create_app_from_env() -> Litestar:
    """For ``uvicorn --factory``: settings from WDP_API__* / WDP_JWT_SECRET / WDP_DEV_MODE only."""
    return create_app(load_settings())
