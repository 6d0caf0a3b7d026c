"""MQTT commands: validated with msgspec, applied through injected callbacks, answered on response/...

    command/zone/{zone_id}/configure   {"correlation_id": "...", "configuration": {...ZonePatch...}}
    command/zone/{zone_id}/delete      {"correlation_id": "..."}
    command/system/start               {"correlation_id": "..."}
    command/system/stop                {"correlation_id": "...", "reason": "..."}
    command/system/status              {"correlation_id": "..."}

An empty payload is the same as ``{}``. Unknown fields, wrong types, unknown commands, bad zone ids, payloads
over the size limit, missing handlers and handler exceptions all produce an ``"error"`` response (with the
correlation id when it could be read) and never stop the subscriber.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from wdp.config_checks import ConfigError, check_zone
from wdp.integrations.mqtt.config import Topics, valid_segment
from wdp.integrations.mqtt.payloads import CommandResponse
from wdp.schemas import DisplayName, Occupancy, Polygon, Zone, ZoneAlertSettings

_log = logging.getLogger(__name__)


class ZonePatch(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Fields of a Zone to change; fields left out stay as they are. The field types are Zone's own (same
    bounds), and ``apply`` checks the result with the rule the REST API uses."""

    name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    polygon: Polygon | msgspec.UnsetType = msgspec.UNSET
    max_occupancy: Occupancy | None | msgspec.UnsetType = msgspec.UNSET
    restricted: bool | msgspec.UnsetType = msgspec.UNSET
    alerts: ZoneAlertSettings | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        """The fields that were given, ready for ``msgspec.structs.replace(zone, **patch.changes())``."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET}

    def apply(self, zone_id: str, current: Zone | None) -> Zone:
        """The zone after this patch (a new zone needs a polygon), checked by ``wdp.config_checks.check_zone``;
        raises CommandError with the reason otherwise."""
        changes = self.changes()
        if current is None:
            if "polygon" not in changes:
                raise CommandError(f"unknown zone {zone_id!r}: give a polygon to create it")
            zone = Zone(id=zone_id, name=changes.pop("name", zone_id), **changes)
        else:
            zone = msgspec.structs.replace(current, **changes)
        try:
            check_zone(zone)
        except ConfigError as exc:
            raise CommandError(f"invalid zone: {exc}") from None
        return zone


CorrelationId = Annotated[str, msgspec.Meta(max_length=200)]


class ZoneConfigureCommand(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    configuration: ZonePatch
    correlation_id: CorrelationId | None = None


class ZoneDeleteCommand(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    correlation_id: CorrelationId | None = None


class SystemCommand(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    correlation_id: CorrelationId | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class _CorrelationOnly(msgspec.Struct):
    """Lenient read of an otherwise invalid command, to quote its correlation id in the error response."""

    correlation_id: Any = None


_ZONE_DECODER = msgspec.json.Decoder(ZoneConfigureCommand)
_ZONE_DELETE_DECODER = msgspec.json.Decoder(ZoneDeleteCommand)
_SYSTEM_DECODER = msgspec.json.Decoder(SystemCommand)
_LENIENT_DECODER = msgspec.json.Decoder(_CorrelationOnly)

MaybeAwaitable = Any  # a value or an awaitable of it: handlers may be plain functions or coroutines
SYSTEM_COMMANDS = ("start", "stop", "status")


@dataclass(frozen=True)
class CommandHandlers:
    """Callbacks the lead injects. Each may be sync or async; what it returns (a Struct, dict, list, str,
    number or None) is sent back as ``result``. An exception becomes an error response with its message."""

    configure_zone: Callable[[str, ZonePatch], MaybeAwaitable] | None = None
    delete_zone: Callable[[str], MaybeAwaitable] | None = None  # raises CommandError for an unknown zone
    start: Callable[[], MaybeAwaitable] | None = None
    stop: Callable[[str], MaybeAwaitable] | None = None  # argument: the reason given (may be "")
    status: Callable[[], MaybeAwaitable] | None = None


class CommandError(Exception):
    """A command that cannot be applied; its message goes into the error response."""


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _lenient_correlation_id(payload: bytes) -> str | None:
    try:
        cid = _LENIENT_DECODER.decode(payload).correlation_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return cid if isinstance(cid, str) and len(cid) <= 200 else None


def _decode(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    try:
        return decoder.decode(payload or b"{}")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CommandError(f"invalid command payload: {exc}") from None


class CommandProcessor:
    """Turns one incoming command message into one response (topic, payload). Pure apart from the handlers,
    so it is tested without a broker too."""

    def __init__(
        self,
        topics: Topics,
        handlers: CommandHandlers,
        *,
        max_bytes: int = 65_536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self.handlers = handlers
        self.max_bytes = max_bytes
        self.clock = clock

    async def process(self, topic: str, payload: bytes) -> tuple[str, CommandResponse] | None:
        """The response for a command message, or None for a topic that is not a command of ours."""
        relative = self.topics.relative(topic)
        if relative is None or not relative.startswith("command/"):
            return None
        parts = relative.split("/")
        response_topic = self.topics.response_for(topic)
        command, target, correlation_id = "unknown", None, None
        try:
            if len(payload) > self.max_bytes:
                raise CommandError(f"payload of {len(payload)} bytes exceeds {self.max_bytes}")
            correlation_id = _lenient_correlation_id(payload) if payload else None
            if len(parts) == 4 and parts[1] == "zone" and parts[3] == "configure":
                command, target = "zone.configure", parts[2]
                if not valid_segment(target):
                    raise CommandError(f"invalid zone id {target!r}")
                zone_cmd: ZoneConfigureCommand = _decode(_ZONE_DECODER, payload)
                correlation_id = zone_cmd.correlation_id
                result = await self._apply("configure_zone", target, zone_cmd.configuration)
            elif len(parts) == 4 and parts[1] == "zone" and parts[3] == "delete":
                command, target = "zone.delete", parts[2]
                if not valid_segment(target):
                    raise CommandError(f"invalid zone id {target!r}")
                delete_cmd: ZoneDeleteCommand = _decode(_ZONE_DELETE_DECODER, payload)
                correlation_id = delete_cmd.correlation_id
                result = await self._apply("delete_zone", target)
            elif len(parts) == 3 and parts[1] == "system":
                command = f"system.{parts[2]}"
                if parts[2] not in SYSTEM_COMMANDS:
                    raise CommandError(f"unknown system command {parts[2]!r}; known: {', '.join(SYSTEM_COMMANDS)}")
                sys_cmd: SystemCommand = _decode(_SYSTEM_DECODER, payload)
                correlation_id = sys_cmd.correlation_id
                if parts[2] == "stop":
                    result = await self._apply("stop", sys_cmd.reason)
                else:
                    result = await self._apply(parts[2])
            else:
                raise CommandError(f"unknown command topic {relative!r}")
        except CommandError as exc:
            return response_topic, CommandResponse(
                command=command,
                status="error",
                correlation_id=correlation_id,
                timestamp=self.clock(),
                target=target,
                error=str(exc),
            )
        except Exception as exc:  # a handler bug must not take the subscriber down
            _log.exception("MQTT command %s failed", command)
            return response_topic, CommandResponse(
                command=command,
                status="error",
                correlation_id=correlation_id,
                timestamp=self.clock(),
                target=target,
                error=f"{type(exc).__name__}: {exc}",
            )
        return response_topic, CommandResponse(
            command=command,
            status="ok",
            correlation_id=correlation_id,
            timestamp=self.clock(),
            target=target,
            result=result,
        )

    async def _apply(self, name: str, *args: Any) -> Any:
        handler: Callable[..., Awaitable[Any] | Any] | None = getattr(self.handlers, name)
        if handler is None:
            raise CommandError(f"command not supported here (no {name} handler)")
        result = await _call(handler, *args)
        try:
            # Check now that the result can be sent, so a bad return value is an error response, not a crash
            # in the publisher.
            msgspec.json.encode(result)
        except (TypeError, msgspec.EncodeError) as exc:
            raise CommandError(f"handler result is not JSON-encodable: {exc}") from None
        return result
