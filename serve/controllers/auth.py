"""/api/v1/auth: token exchange (password or API key), verification, user and API key administration."""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
import duckdb
from litestar import Request, delete, get, post
from litestar.controller import Controller
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from wdp.serve.api_types import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    Identity,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserOut,
)
from wdp.serve.controllers.config import Conflict
from wdp.serve.edge import principal_of
from wdp.serve.errors import WWW_AUTHENTICATE, unprocessable
from wdp.serve.params import IdPath as ItemId
from wdp.serve.security import ADMIN_ALL, AuthError, Principal, new_api_key, split_api_key
from wdp.serve.services import ServicesDep
from wdp.store import config as store_config
from wdp.store import transaction

ADMIN = {"scopes": (ADMIN_ALL,)}


def _invalid_credentials() -> NotAuthorizedException:
    # One message for unknown user, wrong password and disabled account: no user enumeration.
    return NotAuthorizedException(detail="invalid credentials", headers=WWW_AUTHENTICATE)


def _key_out(record: store_config.ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=record.key_id,
        owner=record.owner,
        scopes=list(record.scopes),
        created_at=record.created_at,
        revoked=record.revoked,
        last_used=record.last_used,
    )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]
    opt = ADMIN

    @post(
        "/token",
        operation_id="createToken",
        status_code=HTTP_200_OK,
        opt={"public": True, "sign_in": True},
        raises=[NotAuthorizedException, PermissionDeniedException],
        summary="Exchange username/password or an API key for an access token",
        description="Not counted against the anonymous rate limit: failed attempts are, per username (or API "
        "key id) and per address, and past a few each further one locks them for a doubling time (429 with "
        "Retry-After).",
    )
    async def token(
        self,
        request: Request,  # type: ignore[type-arg]
        services: ServicesDep,
        data: JSONBody[TokenRequest],
    ) -> TokenResponse:
        throttle = services.limiter.sign_in
        named = split_api_key(data.api_key) if data.api_key is not None else None
        account = f"user:{data.username}" if data.grant_type == "password" else (f"key:{named[0]}" if named else None)
        attempt = throttle.keys(services.limiter.client_address(request.scope), account)
        if services.settings.rate_limit.enabled and (wait := throttle.retry_after(attempt)):
            services.metrics.rate_limited.labels("sign_in").inc()
            raise TooManyRequestsException(
                detail="too many failed sign-ins; retry later", headers={"Retry-After": str(wait)}
            )
        try:
            response = await self._exchange(services, data)
        except NotAuthorizedException:
            throttle.failed(attempt)
            raise
        throttle.succeeded(account)
        return response

    async def _exchange(self, services: ServicesDep, data: TokenRequest) -> TokenResponse:
        if data.grant_type == "password":
            if data.username is None or data.password is None or data.api_key is not None:
                raise unprocessable("grant_type=password needs username and password (and no api_key)")
            username, password = data.username, data.password

            def check() -> store_config.UserRecord | None:
                user = store_config.get_user(services.store.cursor(), username)
                ok = services.hasher.verify(user.password_hash if user else None, password)
                return user if user is not None and ok and not user.disabled else None

            user = await anyio.to_thread.run_sync(check)
            if user is None:
                services.metrics.auth_failures.labels("password").inc()
                raise _invalid_credentials()
            held, subject = list(user.scopes), username
            binding: dict[str, Any] = {"user_created": user.created_at}
        else:
            if data.api_key is None or data.username is not None or data.password is not None:
                raise unprocessable("grant_type=api_key needs api_key (and no username/password)")
            key = data.api_key
            try:
                principal = services.api_keys.cached(key) or await anyio.to_thread.run_sync(
                    services.api_keys.verify, key
                )
                principal = services.credentials.check(principal)
            except AuthError as exc:
                services.metrics.auth_failures.labels("api_key").inc()
                raise _invalid_credentials() from exc
            held, subject = sorted(principal.scopes), principal.subject
            binding = {"key_id": principal.key_id}
        scopes = held
        if data.scopes is not None:
            missing = [s for s in data.scopes if s not in held and ADMIN_ALL not in held]
            if missing:
                raise PermissionDeniedException(detail=f"scopes not granted: {', '.join(missing)}")
            scopes = list(dict.fromkeys(data.scopes))
        token, expires_at = services.tokens.issue(subject, scopes, **binding)
        return TokenResponse(
            access_token=token,
            expires_in=int(expires_at - time.time()),
            expires_at=expires_at,
            scope=" ".join(scopes),
        )

    @get(
        "/verify",
        operation_id="verifyToken",
        opt={"scopes": ()},
        summary="Who the presented credentials (Bearer token or X-API-Key) belong to",
    )
    async def verify(self, request: Request) -> Identity:  # type: ignore[type-arg]
        principal: Principal | None = principal_of(request.scope)
        if principal is None:  # the guard already refused this; kept for type narrowing
            raise NotAuthorizedException(detail="authentication required", headers=WWW_AUTHENTICATE)
        return Identity(
            subject=principal.subject,
            kind=principal.kind,
            scopes=sorted(principal.scopes),
            tier=principal.tier,
            expires_at=principal.expires_at,
            key_id=principal.key_id,
        )

    # ------------------------------------------------------------------------------------------ users
    @get("/users", operation_id="listUsers")
    async def list_users(self, services: ServicesDep) -> list[UserOut]:
        users = await services.db(store_config.list_users)
        return [
            UserOut(username=u.username, scopes=list(u.scopes), disabled=u.disabled, created_at=u.created_at)
            for u in users
        ]

    @post("/users", operation_id="createUser", raises=[Conflict])
    async def create_user(self, services: ServicesDep, data: JSONBody[UserCreate]) -> UserOut:
        password_hash = await anyio.to_thread.run_sync(services.hasher.hash, data.password)

        def insert(con: duckdb.DuckDBPyConnection) -> store_config.UserRecord | None:
            with transaction(con):
                if store_config.get_user(con, data.username) is not None:
                    return None
                return store_config.put_user(con, data.username, password_hash, data.scopes, disabled=data.disabled)

        user = await services.db(insert)
        if user is None:
            raise Conflict(f"user {data.username!r} already exists")
        await services.credentials_changed()
        return UserOut(
            username=user.username,
            scopes=list(user.scopes),
            disabled=user.disabled,
            created_at=user.created_at,
        )

    @delete("/users/{username:str}", operation_id="deleteUser", raises=[NotFoundException])
    async def delete_user(self, services: ServicesDep, username: ItemId) -> None:
        if not await services.db(store_config.delete_user, username):
            raise NotFoundException(f"user {username!r} not found")
        await services.credentials_changed()  # its tokens stop working now, REST and open WebSockets

    # ------------------------------------------------------------------------------------------ API keys
    @get("/keys", operation_id="listApiKeys")
    async def list_keys(self, services: ServicesDep) -> list[ApiKeyOut]:
        return [_key_out(k) for k in await services.db(store_config.list_api_keys)]

    @post(
        "/keys",
        operation_id="createApiKey",
        summary="Create an API key; the key is shown only in this answer",
    )
    async def create_key(self, services: ServicesDep, data: JSONBody[ApiKeyCreate]) -> ApiKeyCreated:
        key_id, secret, full = new_api_key()
        key_hash = await anyio.to_thread.run_sync(services.hasher.hash, secret)
        record = await services.db(store_config.add_api_key, key_id, key_hash, data.owner, data.scopes)
        await services.credentials_changed()
        out = _key_out(record)
        return ApiKeyCreated(api_key=full, **{f: getattr(out, f) for f in out.__struct_fields__})

    @delete("/keys/{key_id:str}", operation_id="revokeApiKey", raises=[NotFoundException])
    async def revoke_key(self, services: ServicesDep, key_id: ItemId) -> None:
        if not await services.db(store_config.revoke_api_key, key_id):
            raise NotFoundException(f"API key {key_id!r} not found or already revoked")
        services.api_keys.evict(key_id)
        await services.credentials_changed()  # the key and the tokens exchanged for it stop working now
