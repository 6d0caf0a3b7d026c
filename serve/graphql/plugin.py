"""``GraphQLPlugin``: mounts strawberry's Litestar controller at ``graphql.path`` with the API's own
credentials, scopes and rate limits.

- HTTP: the route passes the edge middleware like every REST route (credentials resolved, the caller's
  rate-limit tier counted, metrics). A request presenting bad credentials is a 401 as on REST; a query
  without any credentials gets UNAUTHENTICATED errors from the fields it asks for; GET without a query
  (GraphiQL in a browser) is served to anyone.
- WebSocket (``graphql-transport-ws``): the handshake's credentials (Authorization / X-API-Key header,
  ``Sec-WebSocket-Protocol: bearer, <token>`` is not offered here) or the ``connection_init`` payload
  ``{"authorization": "Bearer <JWT>"}`` / ``{"token": "<JWT or wdp_ key>"}``; refused with 4403 (strawberry's
  ConnectionRejectionError) without valid credentials or over the streaming tier's connection rate.
- Abuse limits before execution: query depth (``max_depth``), aliases (``max_aliases``) and lexer tokens
  (``max_tokens``, which also bounds the document's size and the number of fields); an allow-list of
  persisted queries (``allow_list_file``) refuses every other document.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import strawberry
from cross_web import HTTPException as GraphQLHTTPException
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from litestar import Request, Response, WebSocket, get, post, websocket
from litestar.background_tasks import BackgroundTasks
from litestar.config.app import AppConfig
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.plugins import InitPluginProtocol
from litestar.status_codes import HTTP_200_OK
from litestar.types import Scope
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter
from strawberry.litestar import make_graphql_controller
from strawberry.schema.config import StrawberryConfig

from wdp.serve.edge import verify_credentials
from wdp.serve.errors import WWW_AUTHENTICATE
from wdp.serve.graphql.schema import Mutation, Query, Subscription
from wdp.serve.graphql.types import SCALAR_MAP
from wdp.serve.security import API_KEY_PREFIX, AuthError
from wdp.serve.services import Services
from wdp.serve.settings import GraphQLSettings


def load_allow_list(path: str) -> dict[str, str]:
    """{sha256 hex: query} from a JSON object of that shape or a JSON list of query texts."""
    raw = json.loads(Path(path).read_text())
    queries = raw.values() if isinstance(raw, dict) else raw
    if not isinstance(queries, list | type({}.values())) or not all(isinstance(q, str) for q in queries):
        raise ValueError(f"{path}: expected a JSON list of queries or an object of sha256 -> query")
    out = {query_hash(q): q for q in queries}
    if isinstance(raw, dict):
        wrong = [h for h, q in raw.items() if query_hash(q) != h.lower()]
        if wrong:
            raise ValueError(f"{path}: keys that are not the sha256 of their query: {', '.join(wrong[:3])}")
    return out


def query_hash(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def allow_list_rule(allowed: dict[str, str]) -> type[ValidationRule]:
    class AllowListRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            loc = context.document.loc
            body = loc.source.body if loc is not None else None
            if body is None or query_hash(body) not in allowed:
                context.report_error(
                    GraphQLError(
                        "query is not in the allow-list of persisted queries", extensions={"code": "FORBIDDEN"}
                    )
                )

    return AllowListRule


class WdpSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only what went wrong on our side: refusals (auth, scopes, input, limits) are the client's and
        are answered, not logged with a traceback."""
        unexpected = [
            e for e in errors if e.original_error is not None and not isinstance(e.original_error, GraphQLError)
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def depth_limit_rule(max_depth: int) -> type[ValidationRule]:
    """Selection depth of every operation, introspection fields included (strawberry's QueryDepthLimiter
    skips ``__schema``/``__type``, so ``ofType { ofType { ... } }`` could nest without bound)."""

    class DepthLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            doc = context.document
            fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
            for op in doc.definitions:
                if isinstance(op, OperationDefinitionNode):
                    depth = _depth(op.selection_set, fragments, frozenset(), 0, max_depth)
                    if depth > max_depth:
                        name = op.name.value if op.name else "anonymous"
                        context.report_error(
                            GraphQLError(
                                f"operation {name!r} nests deeper than the limit of {max_depth} levels",
                                extensions={"code": "QUERY_TOO_DEEP", "max_depth": max_depth},
                            )
                        )

    return DepthLimitRule


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    visited: frozenset[str],
    depth: int,
    limit: int,
) -> int:
    if selection_set is None or depth > limit:  # past the limit: no need to walk further
        return depth
    deepest = depth
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            d = _depth(sel.selection_set, fragments, visited, depth + 1, limit) if sel.selection_set else depth + 1
        elif isinstance(sel, InlineFragmentNode):
            d = _depth(sel.selection_set, fragments, visited, depth, limit)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments and sel.name.value not in visited:
            frag = fragments[sel.name.value]
            d = _depth(frag.selection_set, fragments, visited | {sel.name.value}, depth, limit)
        else:
            d = depth
        deepest = max(deepest, d)
    return deepest


def build_schema(settings: GraphQLSettings, allowed: dict[str, str] | None) -> strawberry.Schema:
    rules: list[type[ValidationRule]] = [depth_limit_rule(settings.max_depth)]
    if allowed is not None:
        rules.append(allow_list_rule(allowed))
    # factories: strawberry builds each extension per request
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: AddValidationRules(rules),
    ]
    return WdpSchema(
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
    )


class GraphQLPlugin(InitPluginProtocol):
    def __init__(self, services: Services) -> None:
        self.services = services
        cfg = services.settings.graphql
        self.allowed = load_allow_list(cfg.allow_list_file) if cfg.allow_list_file else None
        self.schema = build_schema(cfg, self.allowed)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(self.controller())
        return app_config

    def controller(self) -> type:
        services = self.services
        cfg = services.settings.graphql
        allowed = self.allowed

        def context_of(scope: Scope) -> dict[str, Any]:
            return {
                "services": services,
                "principal": scope.get("wdp_principal"),  # type: ignore[call-overload]
                "auth_error": scope.get("wdp_auth_error"),  # type: ignore[call-overload]
            }

        async def http_context(request: Request[Any, Any, Any], response: NamedDependency[Response[Any]]) -> Any:
            ctx = context_of(request.scope)
            if ctx["auth_error"] is not None:
                raise NotAuthorizedException(detail=ctx["auth_error"], headers=WWW_AUTHENTICATE)  # as REST: 401
            return {"request": request, "response": response, **ctx}

        async def ws_context(socket: WebSocket[Any, Any, Any]) -> Any:
            return {"socket": socket, **context_of(socket.scope)}

        async def no_root_value() -> None:
            return None

        def new_response() -> Response[Any]:
            return Response({}, background=BackgroundTasks([]))

        base = make_graphql_controller(
            self.schema,
            path=cfg.path,
            graphql_ide="graphiql" if cfg.graphiql else None,
            subscription_protocols=("graphql-transport-ws",),
            max_subscriptions_per_connection=16,
        )

        class WdpGraphQLController(base):  # type: ignore[valid-type, misc]
            # credentials are checked per field (HTTP) and at connection_init (WebSocket), not by the route
            # guard, so GraphiQL loads without a token; the edge middleware still rate-limits every request
            opt = {"public": True}
            tags = ["graphql"]
            include_in_schema = False
            # strawberry's own handlers and getters infer their dependencies, which Litestar 2.23+ deprecates
            # (a warning: an error under the tests' filterwarnings); these declare them
            dependencies: ClassVar[dict[str, Provide]] = {  # type: ignore[misc]
                "context": Provide(http_context),
                "context_ws": Provide(ws_context),
                "root_value": Provide(no_root_value),
                "response": Provide(new_response, sync_to_thread=False),
            }

            @get(raises=[ValidationException, NotFoundException])
            async def handle_http_get(
                self,
                request: Request[Any, Any, Any],
                context: NamedDependency[Any],
                root_value: NamedDependency[Any],
                response: NamedDependency[Response[Any]],
            ) -> Response[Any]:
                self.temporal_response = response
                return await self.execute_request(request=request, context=context, root_value=root_value)

            @post(status_code=HTTP_200_OK)
            async def handle_http_post(
                self,
                request: Request[Any, Any, Any],
                context: NamedDependency[Any],
                root_value: NamedDependency[Any],
                response: NamedDependency[Response[Any]],
            ) -> Response[Any]:
                self.temporal_response = response
                return await self.execute_request(request=request, context=context, root_value=root_value)

            @websocket()
            async def websocket_endpoint(
                self,
                socket: WebSocket[Any, Any, Any],
                context_ws: NamedDependency[Any],
                root_value: NamedDependency[Any],
            ) -> None:
                await self.run(request=socket, context=context_ws, root_value=root_value)

            async def parse_http_body(self, request: Any) -> Any:
                data = await super().parse_http_body(request)
                if allowed is None or isinstance(data, list) or data.query is not None:
                    return data
                persisted = (data.extensions or {}).get("persistedQuery") or {}
                digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
                if not isinstance(digest, str) or digest.lower() not in allowed:
                    raise GraphQLHTTPException(400, "PersistedQueryNotFound: unknown sha256Hash")
                data.query = allowed[digest.lower()]
                return data

            async def on_ws_connect(self, context: dict[str, Any]) -> Any:
                socket = context["socket"]
                rate = socket.scope.get("wdp_rate")
                if rate is not None and not rate.allowed:
                    services.metrics.ws_disconnects.labels("rate_limited").inc()
                    raise ConnectionRejectionError({"reason": "connection rate limit exceeded"})
                if context.get("principal") is None:
                    params = context.get("connection_params") or {}
                    token = params.get("token") or params.get("authorization") or params.get("Authorization")
                    if isinstance(token, str) and token.lower().startswith("bearer "):
                        token = token[7:].strip()
                    if not isinstance(token, str) or not token:
                        raise ConnectionRejectionError(
                            {"reason": context.get("auth_error") or "authentication required"}
                        )
                    try:
                        if token.startswith(API_KEY_PREFIX):
                            context["principal"] = await verify_credentials(services, api_key=token)
                        else:
                            context["principal"] = await verify_credentials(services, token=token)
                    except AuthError as exc:
                        raise ConnectionRejectionError({"reason": exc.reason}) from None
                    context["auth_error"] = None
                return {"subject": context["principal"].subject}

        WdpGraphQLController.__name__ = "WdpGraphQLController"
        return WdpGraphQLController
