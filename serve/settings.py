"""API server settings: one msgspec Struct tree, loaded from the Hydra ``api`` group and the environment.

Precedence (last wins): Struct defaults < Hydra/dict config < ``WDP_API__SECTION__KEY=value`` environment
variables (nested with ``__``; values that look like JSON lists/objects are decoded) < the short aliases
``WDP_JWT_SECRET``, ``WDP_DEV_MODE``, ``WDP_ADMIN_PASSWORD``. Secrets never need to live in a YAML file.

``check_settings`` refuses an insecure configuration (the shipped default JWT secret, a short HMAC key, RS256
without keys) unless ``dev_mode`` is on: the app factory calls it before building anything.

No HMAC secret given: when the server has a state directory (``state_dir``, else the directory of its store
file, e.g. the history DB of ``wdp serve``), ``with_state_secret`` makes a random one there once
(``wdp_jwt_secret``, mode 0600) and reuses it on every later start, so a restart keeps everyone signed in.
Without one (an in-memory store) a secret must be given, as before.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from wdp.serve.dashboard.settings import DashboardSettings, VisualizationSettings

DEFAULT_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # refused unless dev_mode
MIN_HMAC_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key must be at least as long as the hash output
ENV_PREFIX = "WDP_API__"
JWT_SECRET_FILE = "wdp_jwt_secret"  # in the state directory: the generated secret when none is given

log = logging.getLogger("wdp.serve")

JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512"]


class InsecureSettingsError(RuntimeError):
    """The settings would run the server with a guessable or missing secret."""


class JwtSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    algorithm: JwtAlgorithm = "HS256"
    secret: str = DEFAULT_JWT_SECRET  # HS*
    private_key: str | None = None  # RS*: PEM text, or read from private_key_file
    public_key: str | None = None
    private_key_file: str | None = None
    public_key_file: str | None = None
    issuer: str = "wdp"
    audience: str = "wdp-api"
    access_ttl_s: int = 3600
    leeway_s: float = 5.0


class AuthSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    jwt: JwtSettings = JwtSettings()
    # argon2id cost (RFC 9106 second recommendation by default); tests lower it to keep runs fast
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    api_key_cache_s: float = 60.0  # a verified key skips argon2 for this long (revocation via API evicts)
    token_cache_size: int = 4096  # decoded JWTs kept (until their exp) so a request pays one dict lookup
    bootstrap_admin: str = "admin"  # created at startup with admin:all when no user exists and a password is set
    bootstrap_admin_password: str | None = None


class RateTier(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    limit: int  # requests per window
    window_s: float


def _default_tiers() -> dict[str, RateTier]:
    # The seed's tiers, per minute rather than per hour: a refused client waits at most a minute (Retry-After
    # is the time to its window's reset), not the rest of an hour.
    return {
        "default": RateTier(limit=60, window_s=60.0),
        "authenticated": RateTier(limit=600, window_s=60.0),
        "premium": RateTier(limit=6000, window_s=60.0),
        "streaming": RateTier(limit=60, window_s=60.0),
    }


class SignInLimits(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Failed sign-ins (password grant, API key grant, first use of an X-API-Key) with exponential backoff;
    successful ones and anonymous traffic never count."""

    free_failures_per_account: int = 10  # one username or API key id, from any address
    free_failures_per_address: int = 30  # one address, any accounts
    backoff_base_s: float = 1.0  # the first lock; each further failure doubles it
    backoff_max_s: float = 300.0
    forget_after_s: float = 900.0  # failures of a key quiet this long are forgotten (> backoff_max_s)


class RateLimitSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    tiers: dict[str, RateTier] = msgspec.field(default_factory=_default_tiers)
    anonymous_tier: str = "default"
    authenticated_tier: str = "authenticated"
    stream_tier: str = "streaming"  # WebSocket connection attempts
    subject_tiers: dict[str, str] = {}  # username or "key:<key_id>" -> tier (e.g. premium customers)
    admin_tier: str = "premium"  # tokens with admin:all
    # Addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed (empty: none, the peer address is
    # the client). Behind a proxy, list it here, or every client shares the proxy's anonymous budget.
    trusted_proxies: list[str] = []
    sign_in: SignInLimits = SignInLimits()
    max_tracked_clients: int = 100_000  # expired windows are swept when more are tracked


class CorsSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    allow_origins: list[str] = []  # empty: CORS off
    allow_methods: list[str] = msgspec.field(default_factory=lambda: ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
    allow_headers: list[str] = msgspec.field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-API-Key", "API-Version"]
    )
    expose_headers: list[str] = msgspec.field(
        default_factory=lambda: [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "Retry-After",
            "API-Version",
            "Deprecation",
            "Sunset",
            "Link",
        ]
    )
    allow_credentials: bool = False
    max_age: int = 600


class ApiVersionInfo(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    status: Literal["stable", "beta", "deprecated"] = "stable"
    deprecated_at: str | None = None  # ISO 8601 date/time; set -> Deprecation header (RFC 9745)
    sunset_at: str | None = None  # ISO 8601 date/time; set -> Sunset header (RFC 8594)
    migration_guide: str | None = None  # URL -> Link: <...>; rel="deprecation"


class VersioningSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    versions: dict[str, ApiVersionInfo] = msgspec.field(default_factory=lambda: {"v1": ApiVersionInfo()})


class StreamSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    queue_size: int = 64  # outbound messages buffered per client; the oldest is dropped beyond this
    overflow_disconnect_s: float = 5.0  # a client that keeps its queue overflowing this long is closed
    max_clients: int = 2000
    max_fps: float = 30.0  # pose_updates ceiling; a client may configure less
    max_message_bytes: int = 16384  # inbound message size limit
    auth_timeout_s: float = 5.0  # a connection without credentials must send its auth message within this
    engine_buffer: int = 256  # items buffered per engine subscription of the hub


class DemoFeedSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Synthetic frames published into the store-backed engine view (development and benchmarks)."""

    fps: float = 0.0  # 0: off
    persons: int = 3


class GraphQLSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``/graphql`` (wdp.serve.graphql): same credentials, scopes and rate limits as REST."""

    enabled: bool = True
    path: str = "/graphql"
    graphiql: bool = True  # the in-browser IDE on GET with Accept: text/html
    max_depth: int = 16  # deeper selections (introspection's ofType chains too) are refused before execution;
    # GraphiQL's own introspection query is 13 deep
    max_aliases: int = 20  # aliased fields per operation (a huge alias fan-out is one request doing many)
    max_tokens: int = 2000  # lexer tokens per document: bounds parse cost and query size
    max_history_limit: int = 1000  # page size ceiling of poseHistory (REST's)
    # Persisted queries: a JSON file {"<sha256 hex of the query text>": "<query>"} or a list of queries. When
    # set, only those documents run; a request may send the hash alone as {"extensions": {"persistedQuery":
    # {"sha256Hash": ...}}} or the full text (which must hash to an entry).
    allow_list_file: str | None = None


class GrpcSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The gRPC API (wdp.serve.rpc) in the same process and event loop as the ASGI app."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 50051  # 0: any free port (tests; the bound one is logged and kept on the plugin)
    max_message_bytes: int = 4 * 1024 * 1024  # inbound and outbound; a larger message fails RESOURCE_EXHAUSTED
    tls_cert_file: str | None = None  # both set: TLS (PEM), else plaintext
    tls_key_file: str | None = None
    max_concurrent_streams: int = 1000  # streaming RPCs at once (per server)
    ingest_max_frame_values: int = 2 * 4096 * 8 * 8  # re_im floats of one CsiFrame


class ServeSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    dev_mode: bool = False  # allows the default secret, enables the debug flag
    title: str = "wdp API"
    store_path: str = ":memory:"  # used when the factory is not handed a Store
    state_dir: str | None = None  # generated state (the JWT secret); None: the store file's directory
    request_max_body_size: int = 1_048_576
    export_dir: str | None = None  # temp files for analytics/export (default: system temp dir)
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    cors: CorsSettings = CorsSettings()
    versioning: VersioningSettings = VersioningSettings()
    stream: StreamSettings = StreamSettings()
    demo_feed: DemoFeedSettings = DemoFeedSettings()
    dashboard: DashboardSettings = DashboardSettings()
    visualization: VisualizationSettings = VisualizationSettings()
    graphql: GraphQLSettings = GraphQLSettings()
    grpc: GrpcSettings = GrpcSettings()
    # the ASGI server of python -m wdp.serve: uvicorn (HTTP/1.1 + WebSocket) or hypercorn (adds HTTP/2: h2 over
    # TLS by ALPN, h2c by prior knowledge or upgrade)
    server: Literal["uvicorn", "hypercorn"] = "uvicorn"


# ------------------------------------------------------------------------------------------------ loading


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _env_value(raw: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        return msgspec.json.decode(stripped)
    return raw


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``WDP_API__A__B=value`` variables and the short aliases."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(raw)
    aliases = {
        "WDP_JWT_SECRET": ("auth", "jwt", "secret"),
        "WDP_DEV_MODE": ("dev_mode",),
        "WDP_ADMIN_PASSWORD": ("auth", "bootstrap_admin_password"),
    }
    for name, path in aliases.items():
        if name in env:
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = env[name]
    return out


def load_settings(config: Any = None, env: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from a Hydra/OmegaConf node or plain mapping (the ``api`` group), then the environment.
    Unknown keys fail loudly (typos in YAML or env names)."""
    from omegaconf import DictConfig, OmegaConf

    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, DictConfig):  # checked first: a DictConfig is also a Mapping
        container = OmegaConf.to_container(config, resolve=True)
        base = {str(k): v for k, v in container.items()}  # type: ignore[union-attr]
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise TypeError(f"api settings must be a mapping, got {type(config).__name__}")
    merged = _merge(base, env_overrides(os.environ if env is None else env))
    # strict=False: environment strings become ints, floats and bools where the field says so
    return msgspec.convert(merged, ServeSettings, strict=False)


# ------------------------------------------------------------------------------------------------ checks


def _read(text: str | None, file: str | None) -> str | None:
    if text:
        return text
    if file:
        return Path(file).read_text()
    return None


def jwt_keys(jwt: JwtSettings) -> tuple[Any, Any]:
    """(signing key, verification key) for the configured algorithm."""
    if jwt.algorithm.startswith("HS"):
        return jwt.secret, jwt.secret
    private = _read(jwt.private_key, jwt.private_key_file)
    public = _read(jwt.public_key, jwt.public_key_file)
    if public is None:
        raise InsecureSettingsError(f"{jwt.algorithm} needs auth.jwt.public_key (or public_key_file)")
    return private, public


def _load_or_create_secret(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole under a temporary name, then linked into place: a second server starting at the same
        # moment either wins the link or reads the complete file, never an empty one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                log.info("generated a JWT secret in %s (kept for later starts)", path)
        finally:
            tmp.unlink(missing_ok=True)
        text = path.read_text().strip()
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users than its owner: chmod 600 it", path)
    return text


def with_state_secret(settings: ServeSettings, store_path: str | None = None) -> ServeSettings:
    """``settings`` with the JWT secret kept in the state directory when no HMAC secret is configured (see the
    module docstring); unchanged when one is, for RS*, or when there is no state directory."""
    jwt = settings.auth.jwt
    if not jwt.algorithm.startswith("HS") or jwt.secret != DEFAULT_JWT_SECRET:
        return settings
    directory = settings.state_dir
    if directory is None and store_path and store_path != ":memory:":
        directory = str(Path(store_path).resolve().parent)
    if directory is None:
        return settings
    secret = _load_or_create_secret(Path(directory) / JWT_SECRET_FILE)
    new_jwt = msgspec.structs.replace(jwt, secret=secret)
    return msgspec.structs.replace(settings, auth=msgspec.structs.replace(settings.auth, jwt=new_jwt))


def check_settings(settings: ServeSettings) -> None:
    """Raise InsecureSettingsError for a configuration that must not serve traffic."""
    jwt = settings.auth.jwt
    if jwt.algorithm.startswith("HS"):
        if not settings.dev_mode:
            if jwt.secret == DEFAULT_JWT_SECRET:
                raise InsecureSettingsError(
                    "refusing to start with the default JWT secret: set WDP_JWT_SECRET, a state_dir to keep a "
                    "generated one in, or dev_mode=true"
                )
            if len(jwt.secret.encode()) < MIN_HMAC_SECRET_BYTES:
                raise InsecureSettingsError(
                    f"JWT secret must be at least {MIN_HMAC_SECRET_BYTES} bytes for {jwt.algorithm}"
                )
    else:
        jwt_keys(jwt)  # public key required even to only verify tokens
    if jwt.access_ttl_s <= 0:
        raise InsecureSettingsError("auth.jwt.access_ttl_s must be > 0")
    rl = settings.rate_limit
    for name in (
        rl.anonymous_tier,
        rl.authenticated_tier,
        rl.stream_tier,
        rl.admin_tier,
        *rl.subject_tiers.values(),
    ):
        if name not in rl.tiers:
            raise ValueError(f"rate limit tier {name!r} is not defined in rate_limit.tiers")
    for tier_name, tier in rl.tiers.items():
        if tier.limit < 1 or tier.window_s <= 0:
            raise ValueError(f"rate limit tier {tier_name!r} needs limit >= 1 and window_s > 0")
    for proxy in rl.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"rate_limit.trusted_proxies: {proxy!r} is not an address or network") from None
    si = rl.sign_in
    if min(si.free_failures_per_account, si.free_failures_per_address) < 1 or si.backoff_base_s <= 0:
        raise ValueError("rate_limit.sign_in needs free_failures_* >= 1 and backoff_base_s > 0")
    if not si.backoff_base_s <= si.backoff_max_s < si.forget_after_s:
        raise ValueError("rate_limit.sign_in needs backoff_base_s <= backoff_max_s < forget_after_s")
    if settings.stream.queue_size < 1:
        raise ValueError("stream.queue_size must be >= 1")
