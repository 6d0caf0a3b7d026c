"""OpenAPI settings and the error documentation every operation shares.

Litestar documents handler exceptions with its own ``{status_code, detail, extra}`` shape and validation
errors as 400; this API answers ``ErrorBody`` and 422. ``document_errors`` rewrites the generated document
once at startup so it says what the server does: ErrorBody for every 4xx, 422 instead of 400, 401/403 on
protected operations, 429 where the rate limit applies, and per-operation security requirements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec
from litestar import Litestar, Router
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin  # private: see the plugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.plugins.core._msgspec import kwarg_definition_from_field
from litestar.routes import HTTPRoute
from litestar.types.empty import Empty
from litestar.typing import FieldDefinition

from wdp.serve.errors import scope_requirement
from wdp.serve.settings import ServeSettings

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

SCHEMA_PATH = "/schema"
ERROR_SCHEMA_NAME = "ErrorBody"
_SECURITY = [{"BearerToken": []}, {"ApiKey": []}]

_ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["status_code", "error", "reason"],
    properties={
        "status_code": Schema(type=OpenAPIType.INTEGER),
        "error": Schema(type=OpenAPIType.STRING, description="HTTP status name"),
        "reason": Schema(type=OpenAPIType.STRING, description="What was wrong, for a human"),
        "extra": Schema(
            one_of=[
                Schema(type=OpenAPIType.NULL),
                Schema(type=OpenAPIType.OBJECT, additional_properties=Schema()),
                Schema(
                    type=OpenAPIType.ARRAY,
                    items=Schema(type=OpenAPIType.OBJECT, additional_properties=Schema()),
                ),
            ]
        ),
    },
)
_RATE_HEADERS = {
    "X-RateLimit-Limit": OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="Requests per window"),
    "X-RateLimit-Remaining": OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="Left in this window"),
    "X-RateLimit-Reset": OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="Window reset, epoch s"),
}
_STANDARD_ERRORS = {
    "401": "Missing, expired or invalid credentials",
    "403": "The credentials lack a required scope",
    "422": "Invalid parameters or body",
    "429": "Rate limit exceeded (see Retry-After)",
}


def openapi_config(settings: ServeSettings) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=settings.title,
        version="1.0.0",
        description="WiFi CSI pose estimation: poses, history, analytics, configuration, webhooks. "
        "Authenticate with `Authorization: Bearer <JWT>` (POST /api/v1/auth/token) or `X-API-Key`.",
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
            }
        ),
        security=_SECURITY,
        render_plugins=[ScalarRenderPlugin()],
        openapi_router=Router(
            SCHEMA_PATH,
            route_handlers=[],
            opt={"public": True, "no_rate_limit": True},
            include_in_schema=False,
        ),
    )


def _error_response(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={"application/json": OpenAPIMediaType(schema=Reference(f"#/components/schemas/{ERROR_SCHEMA_NAME}"))},
    )


def _is_litestar_error(response: Any) -> bool:
    if not isinstance(response, OpenAPIResponse) or not response.content:
        return True
    media = response.content.get("application/json")
    schema = media.schema if media is not None else None
    if isinstance(schema, Schema):
        if schema.properties and "detail" in schema.properties:
            return True
        return any(isinstance(s, Schema) and s.properties and "detail" in s.properties for s in schema.one_of or ())
    return False


def _handler_opts(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    opts: dict[tuple[str, str], dict[str, Any]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                for method in handler.http_methods:
                    opts[(route.path_format, method.lower())] = dict(handler.opt)
    return opts


def document_errors(app: Litestar, extra_responses: dict[tuple[str, str], dict[str, OpenAPIResponse]]) -> None:
    """Rewrite the app's generated OpenAPI document in place (see module doc)."""
    doc = app.openapi_schema
    components = doc.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    opts = _handler_opts(app)
    for path, item in (doc.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            op = getattr(item, method, None)
            if op is None or isinstance(item, Reference):
                continue
            opt = opts.get((path, method), {})
            responses: dict[str, Any] = dict(op.responses or {})
            if "400" in responses and _is_litestar_error(responses["400"]):
                del responses["400"]
                responses["422"] = _error_response(_STANDARD_ERRORS["422"])
            for code, response in list(responses.items()):
                if code.isdigit() and int(code) >= 400 and _is_litestar_error(response):
                    description = response.description if isinstance(response, OpenAPIResponse) else ""
                    responses[code] = _error_response(_STANDARD_ERRORS.get(code, description or "Error"))
            if op.request_body is not None:
                responses.setdefault("400", _error_response("Malformed request body"))
                responses.setdefault("413", _error_response("Request body too large"))
                responses.setdefault("415", _error_response("Request body is not application/json"))
                responses.setdefault("422", _error_response(_STANDARD_ERRORS["422"]))
            if opt.get("public"):
                op.security = []
            else:
                responses.setdefault("401", _error_response(_STANDARD_ERRORS["401"]))
                if opt.get("scopes"):
                    responses.setdefault("403", _error_response(_STANDARD_ERRORS["403"]))
                    op.description = (
                        (op.description or "") + f"\n\nRequires scope: {scope_requirement(opt['scopes'])}."
                    ).strip()
            if not opt.get("no_rate_limit"):
                responses.setdefault("429", _error_response(_STANDARD_ERRORS["429"]))
                for code, response in responses.items():
                    if opt.get("sign_in"):  # its own budget (failed attempts): no X-RateLimit-* headers
                        break
                    if code.startswith("2") and isinstance(response, OpenAPIResponse):
                        response.headers = {**_RATE_HEADERS, **(response.headers or {})}
            responses.update(extra_responses.get((path, method), {}))
            op.responses = responses


class StructDefaultsSchemaPlugin(StructSchemaPlugin):
    """Litestar 2.25's Struct schema plugin tests ``field.default not in {NODEFAULT, UNSET}``, which raises
    TypeError for a mutable default (``zone_ids: list[str] = []`` in wdp.schemas). Same schema, identity
    tests instead. Registered before Litestar's own plugin, so it handles every Struct."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        type_hints = field_definition.get_type_hints(include_extras=True, resolve_generics=True)
        info: msgspec.inspect.StructType = msgspec.inspect.type_info(field_definition.type_)  # type: ignore[assignment]
        properties = {}
        for f in info.fields:
            kwargs: dict[str, Any] = {}
            if kwarg_definition := kwarg_definition_from_field(f)[0]:
                kwargs["kwarg_definition"] = kwarg_definition
            default = Empty if f.default is msgspec.NODEFAULT or f.default is msgspec.UNSET else f.default
            properties[f.encode_name] = FieldDefinition.from_annotation(
                annotation=type_hints[f.name], name=f.encode_name, default=default, **kwargs
            )
        required = [f.encode_name for f in info.fields if f.required]
        if info.tag_field:
            properties[info.tag_field] = FieldDefinition.from_annotation(Literal[info.tag])  # type: ignore[arg-type]
            required.append(info.tag_field)
        return schema_creator.create_component_schema(
            field_definition, required=sorted(required), property_fields=properties
        )
