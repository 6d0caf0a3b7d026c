"""Authentication: JWT access tokens (pyjwt), argon2 password and API key hashes, scopes, principals.

- Tokens are verified with exactly the configured algorithm (``algorithms=[alg]``): ``alg=none`` and
  HS/RS confusion are rejected by construction. ``exp``, ``iat``, ``sub``, ``iss``, ``aud`` and ``scopes`` are
  required; the time claims must be numbers of seconds in 0..MAX_EPOCH_S (anything else, e.g. ``exp=10**400``,
  is a 401 with a reason, never an overflow), and a token longer than MAX_TOKEN_CHARS is refused unparsed.
- Decoded tokens are cached by their exact string until they expire, so an authenticated request costs a
  dict lookup instead of an HMAC and a JSON parse.
- Revocation: a token from ``POST /auth/token`` is bound to where it came from: the user record (claim
  ``user_created``: the user's creation time, so a deleted and re-created user's old tokens stay dead) or the
  API key (claim ``key_id``). Every request checks its principal against ``CredentialRegistry`` (the users and
  live keys in memory, reloaded after each change), so deleting or disabling a user, revoking a key or taking
  scopes away takes effect on the next request. ``TokenService.issue`` without a binding (tests, in-process
  tools: only the holder of the signing key can mint tokens) gives a token that only its ``exp`` limits.
- API keys look like ``wdp_<key_id>_<secret>``; the store holds argon2(secret) under key_id. A verified key is
  cached (keyed by its SHA-256) for ``api_key_cache_s`` so argon2's deliberate cost is paid once per key and
  window, not per request; revoking through the API evicts it at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

import argon2
import duckdb
import jwt
import msgspec

from wdp.serve.settings import AuthSettings, RateLimitSettings, jwt_keys
from wdp.store import Store
from wdp.store import config as store_config
from wdp.store.config import ApiKeyRecord, UserRecord

POSE_READ = "pose:read"
ANALYTICS_READ = "analytics:read"
SYSTEM_READ = "system:read"
CONFIG_WRITE = "config:write"
ZONE_WRITE = "zone:write"
ADMIN_ALL = "admin:all"
STREAM_SUBSCRIBE = "stream:subscribe"
STREAM_PUBLISH = "stream:publish"
SCOPES: tuple[str, ...] = (
    POSE_READ,
    ANALYTICS_READ,
    SYSTEM_READ,
    CONFIG_WRITE,
    ZONE_WRITE,
    ADMIN_ALL,
    STREAM_SUBSCRIBE,
    STREAM_PUBLISH,
)
Scope = Literal[
    "pose:read",
    "analytics:read",
    "system:read",
    "config:write",
    "zone:write",
    "admin:all",
    "stream:subscribe",
    "stream:publish",
]
API_KEY_PREFIX = "wdp_"
MAX_TOKEN_CHARS = 8192  # ours are ~400; a longer one is refused before any base64 or JSON work
MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z: the largest time claim a token may carry
_TIME_CLAIMS = ("exp", "iat", "nbf")


class AuthError(Exception):
    """Credentials were presented but are not valid; ``reason`` is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Principal(msgspec.Struct, kw_only=True, frozen=True):
    """Who is calling: a user (JWT) or an API key, with its scopes and rate-limit tier."""

    subject: str
    scopes: frozenset[str]
    kind: Literal["jwt", "api_key"]
    tier: str
    expires_at: float | None = None
    key_id: str | None = None  # the API key, or the key a JWT was exchanged for
    user_created: float | None = None  # a JWT from a password grant: the creation time of its user record

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN_ALL in self.scopes

    def allows_any(self, scopes: Iterable[str]) -> bool:
        return ADMIN_ALL in self.scopes or any(s in self.scopes for s in scopes)

    @property
    def rate_key(self) -> str:
        return f"key:{self.key_id}" if self.kind == "api_key" else f"user:{self.subject}"


def check_scopes(scopes: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(scopes))
    unknown = [s for s in out if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}")
    return out


def tier_for(subject_key: str, scopes: Iterable[str], limits: RateLimitSettings) -> str:
    if subject_key in limits.subject_tiers:
        return limits.subject_tiers[subject_key]
    return limits.admin_tier if ADMIN_ALL in scopes else limits.authenticated_tier


# ------------------------------------------------------------------------------------------------ hashing


class SecretHasher:
    """argon2id hashing of passwords and API key secrets."""

    def __init__(self, settings: AuthSettings) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._dummy: str | None = None

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, hashed: str | None, secret: str) -> bool:
        if hashed is None and self._dummy is None:
            # Verified against when a user does not exist, so a miss costs as much as a wrong password.
            self._dummy = self._ph.hash(secrets.token_urlsafe(16))
        try:
            return self._ph.verify(hashed or self._dummy, secret) and hashed is not None  # type: ignore[arg-type]
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


# ------------------------------------------------------------------------------------------------ JWT


class TokenService:
    def __init__(self, auth: AuthSettings, limits: RateLimitSettings) -> None:
        self._jwt = auth.jwt
        self._limits = limits
        self._signing_key, self._verify_key = jwt_keys(auth.jwt)
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = auth.token_cache_size
        self._lock = threading.Lock()

    def issue(
        self,
        subject: str,
        scopes: Iterable[str],
        *,
        ttl_s: int | None = None,
        now: float | None = None,
        key_id: str | None = None,
        user_created: float | None = None,
    ) -> tuple[str, float]:
        """A signed access token and its expiry (epoch seconds). ``key_id`` / ``user_created`` bind it to the
        API key or user record it was issued for (see CredentialRegistry)."""
        if self._signing_key is None:
            raise RuntimeError(f"no private key configured to sign {self._jwt.algorithm} tokens")
        t = int(time.time() if now is None else now)
        exp = t + (ttl_s or self._jwt.access_ttl_s)
        scope_list = check_scopes(scopes)
        claims = {
            "sub": subject,
            "iat": t,
            "nbf": t,
            "exp": exp,
            "iss": self._jwt.issuer,
            "aud": self._jwt.audience,
            "jti": secrets.token_hex(8),
            "scopes": scope_list,
            "tier": tier_for(f"user:{subject}", scope_list, self._limits),
        }
        if key_id is not None:
            claims["key_id"] = key_id
        if user_created is not None:
            claims["user_created"] = user_created
        return jwt.encode(claims, self._signing_key, algorithm=self._jwt.algorithm), float(exp)

    def verify(self, token: str, *, now: float | None = None) -> Principal:
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError(f"invalid token: longer than {MAX_TOKEN_CHARS} characters")
        t = time.time() if now is None else now
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at is not None and cached.expires_at + self._jwt.leeway_s > t:
                return cached
            with self._lock:
                self._cache.pop(token, None)
            raise AuthError("token has expired")
        principal = self._decode(token)
        with self._lock:
            self._cache[token] = principal
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self._jwt.algorithm],
                audience=self._jwt.audience,
                issuer=self._jwt.issuer,
                leeway=self._jwt.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {str(exc)[:160]}") from exc
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # whatever pyjwt does not wrap
            raise AuthError("invalid token: malformed") from exc
        # pyjwt coerces with int(): "123", true and 10**400 pass its checks; ours take numbers in range only
        for name in _TIME_CLAIMS:
            value = claims.get(name)
            if name in claims and not _epoch_seconds(value):
                raise AuthError(f"invalid token: {name} must be a number of seconds in 0..{MAX_EPOCH_S}")
        scopes = claims.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise AuthError("invalid token: scopes must be a list of strings")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthError("invalid token: bad subject")
        key_id = claims.get("key_id")
        if key_id is not None and not (isinstance(key_id, str) and len(key_id) == 12):
            raise AuthError("invalid token: bad key_id")
        user_created = claims.get("user_created")
        if user_created is not None and not _epoch_seconds(user_created):
            raise AuthError("invalid token: bad user_created")
        tier = claims.get("tier")
        if not isinstance(tier, str) or tier not in self._limits.tiers:
            tier = tier_for(f"user:{subject}", scopes, self._limits)
        return Principal(
            subject=subject,
            scopes=frozenset(s for s in scopes if s in SCOPES),
            kind="jwt",
            tier=tier,
            expires_at=float(claims["exp"]),
            key_id=key_id,
            user_created=None if user_created is None else float(user_created),
        )


def _epoch_seconds(value: object) -> bool:
    # bool is an int subclass; NaN fails both comparisons
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCH_S


# ------------------------------------------------------------------------------------------------ revocation


class CredentialRegistry:
    """The users and live API keys as the store holds them, in memory, so checking a principal on every
    request is a dict lookup. ``reload`` after each change (the auth controller does, through
    ``Services.credentials_changed``, which also re-checks open WebSockets)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._state: tuple[dict[str, UserRecord], dict[str, ApiKeyRecord]] | None = None

    def reload(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Blocking (DuckDB): call from a worker thread."""
        con = con if con is not None else self._store.cursor()
        users = {u.username: u for u in store_config.list_users(con)}
        keys = {k.key_id: k for k in store_config.list_api_keys(con) if not k.revoked}
        self._state = (users, keys)  # one assignment: readers see the old or the new state, never a mix

    def check(self, principal: Principal) -> Principal:
        """The principal if its user / key still grants it, else AuthError saying why."""
        if principal.key_id is None and principal.user_created is None:
            return principal  # an unbound token (see the module docstring)
        if self._state is None:
            self.reload()  # first use before any reload: once, small
        users, keys = self._state  # type: ignore[misc]
        if principal.key_id is not None:
            key = keys.get(principal.key_id)
            if key is None:
                raise AuthError("API key has been revoked")
            held: Iterable[str] = key.scopes
        else:
            user = users.get(principal.subject)
            if user is None or user.created_at != principal.user_created:
                raise AuthError("user no longer exists")
            if user.disabled:
                raise AuthError("user is disabled")
            held = user.scopes
        if ADMIN_ALL not in held and not principal.scopes <= frozenset(held):
            raise AuthError("token scopes are no longer granted")
        return principal


# ------------------------------------------------------------------------------------------------ API keys


def new_api_key() -> tuple[str, str, str]:
    """(key_id, secret, full key as given to the client)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{API_KEY_PREFIX}{key_id}_{secret}"


def split_api_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret or len(secret) > 128:
        return None
    return key_id, secret


class ApiKeyVerifier:
    """Verifies ``wdp_<key_id>_<secret>`` against the store (argon2), with a short positive cache."""

    def __init__(self, store: Store, hasher: SecretHasher, auth: AuthSettings, limits: RateLimitSettings) -> None:
        self._store = store
        self._hasher = hasher
        self._ttl = auth.api_key_cache_s
        self._limits = limits
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str, now: float | None = None) -> Principal | None:
        hit = self._cache.get(hashlib.sha256(key.encode()).digest())
        if hit is None:
            return None
        principal, until = hit
        return principal if until > (time.monotonic() if now is None else now) else None

    def verify(self, key: str) -> Principal:
        """Blocking (argon2 + DuckDB): call from a worker thread."""
        parts = split_api_key(key)
        if parts is None:
            raise AuthError("malformed API key")
        key_id, secret = parts
        record = self._find(key_id)
        ok = self._hasher.verify(record.key_hash if record else None, secret)
        if record is None or not ok:
            raise AuthError("invalid API key")
        principal = Principal(
            subject=record.owner,
            scopes=frozenset(s for s in record.scopes if s in SCOPES),
            kind="api_key",
            tier=tier_for(f"key:{record.key_id}", record.scopes, self._limits),
            key_id=record.key_id,
        )
        with self._lock:
            self._cache[hashlib.sha256(key.encode()).digest()] = (principal, time.monotonic() + self._ttl)
        store_config.touch_api_key(self._store.cursor(), record.key_id)
        return principal

    def evict(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (p, _) in self._cache.items() if p.key_id == key_id]:
                del self._cache[digest]

    def _find(self, key_id: str) -> ApiKeyRecord | None:
        con = self._store.cursor()
        return next((k for k in store_config.list_api_keys(con) if k.key_id == key_id and not k.revoked), None)
