"""/api/v1/config: CRUD of routers, zones, alert rules and templates, validated; zone changes go live.

Reads need system:read (or a write scope); writes need config:write; zones also accept zone:write for both.
Every zone change hands the engine the whole new zone set (``EngineView.set_zones``) under a lock, so
concurrent edits cannot leave the engine with an older set than the store.
"""

from __future__ import annotations

from typing import Any

import duckdb
from litestar import delete, get, post, put
from litestar.controller import Controller
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT

from wdp.schemas import AlertRule, Router, Zone
from wdp.serve.api_types import ConfigTemplate, TemplateApplied
from wdp.serve.errors import unprocessable
from wdp.serve.params import IdPath as ItemId
from wdp.serve.security import CONFIG_WRITE, SYSTEM_READ, ZONE_WRITE
from wdp.serve.services import ServicesDep
from wdp.serve.templates_store import TEMPLATES
from wdp.serve.validation import (
    check_alert_rule,
    check_description,
    check_id,
    check_name,
    check_router,
    check_zone,
)
from wdp.store import config as store_config
from wdp.store import transaction
from wdp.store.config import ConfigTable

READ = {"scopes": (SYSTEM_READ, CONFIG_WRITE)}
WRITE = {"scopes": (CONFIG_WRITE,)}
ZONE_EDIT = {"scopes": (ZONE_WRITE, CONFIG_WRITE)}
ZONE_READ = {"scopes": (SYSTEM_READ, CONFIG_WRITE, ZONE_WRITE)}


class Conflict(ClientException):
    status_code = HTTP_409_CONFLICT


def _check_path_id(path_id: str, body_id: str) -> None:
    if path_id != body_id:
        raise unprocessable("the id in the body must match the id in the path", path_id=path_id, body_id=body_id)


async def _get(services: ServicesDep, table: ConfigTable[Any], item_id: str, kind: str) -> Any:
    item = await services.db(table.get, item_id)
    if item is None:
        raise NotFoundException(f"{kind} {item_id!r} not found")
    return item


async def _create(services: ServicesDep, table: ConfigTable[Any], item: Any, kind: str) -> Any:
    def insert(con: duckdb.DuckDBPyConnection) -> bool:
        with transaction(con):
            if table.get(con, item.id) is not None:
                return False
            table.put(con, item)
            return True

    if not await services.db(insert):
        raise Conflict(f"{kind} {item.id!r} already exists")
    return item


async def _delete(services: ServicesDep, table: ConfigTable[Any], item_id: str, kind: str) -> None:
    if not await services.db(table.delete, item_id):
        raise NotFoundException(f"{kind} {item_id!r} not found")


async def sync_zones(services: ServicesDep) -> None:
    """Hand the engine the stored zone set (call with services.config_lock held)."""
    zones = await services.db(store_config.ZONES.list)
    try:
        services.engine.set_zones(zones)
    except ValueError as exc:
        raise unprocessable(f"engine rejected the zone set: {exc}") from exc


class ConfigController(Controller):
    path = "/api/v1/config"
    tags = ["config"]
    opt = READ

    # ------------------------------------------------------------------------------------------ routers
    @get("/routers", operation_id="listRouterConfigs")
    async def list_routers(self, services: ServicesDep) -> list[Router]:
        return await services.db(store_config.ROUTERS.list)

    @get("/routers/{router_id:str}", operation_id="getRouterConfig", raises=[NotFoundException])
    async def get_router(self, services: ServicesDep, router_id: ItemId) -> Router:
        return await _get(services, store_config.ROUTERS, router_id, "router")

    @post("/routers", operation_id="createRouterConfig", opt=WRITE, raises=[Conflict])
    async def create_router(self, services: ServicesDep, data: JSONBody[Router]) -> Router:
        check_router(data)
        return await _create(services, store_config.ROUTERS, data, "router")

    @put("/routers/{router_id:str}", operation_id="replaceRouterConfig", opt=WRITE)
    async def replace_router(self, services: ServicesDep, router_id: ItemId, data: JSONBody[Router]) -> Router:
        _check_path_id(router_id, data.id)
        check_router(data)
        return await services.db(store_config.ROUTERS.put, data)

    @delete("/routers/{router_id:str}", operation_id="deleteRouterConfig", opt=WRITE, raises=[NotFoundException])
    async def delete_router(self, services: ServicesDep, router_id: ItemId) -> None:
        await _delete(services, store_config.ROUTERS, router_id, "router")

    # ------------------------------------------------------------------------------------------ zones
    @get("/zones", operation_id="listZones", opt=ZONE_READ)
    async def list_zones(self, services: ServicesDep) -> list[Zone]:
        return await services.db(store_config.ZONES.list)

    @get("/zones/{zone_id:str}", operation_id="getZone", opt=ZONE_READ, raises=[NotFoundException])
    async def get_zone(self, services: ServicesDep, zone_id: ItemId) -> Zone:
        return await _get(services, store_config.ZONES, zone_id, "zone")

    @post("/zones", operation_id="createZone", opt=ZONE_EDIT, raises=[Conflict])
    async def create_zone(self, services: ServicesDep, data: JSONBody[Zone]) -> Zone:
        check_zone(data)
        async with services.config_lock:
            await _create(services, store_config.ZONES, data, "zone")
            await sync_zones(services)
        return data

    @put("/zones/{zone_id:str}", operation_id="replaceZone", opt=ZONE_EDIT)
    async def replace_zone(self, services: ServicesDep, zone_id: ItemId, data: JSONBody[Zone]) -> Zone:
        _check_path_id(zone_id, data.id)
        check_zone(data)
        async with services.config_lock:
            await services.db(store_config.ZONES.put, data)
            await sync_zones(services)
        return data

    @delete("/zones/{zone_id:str}", operation_id="deleteZone", opt=ZONE_EDIT, raises=[NotFoundException])
    async def delete_zone(self, services: ServicesDep, zone_id: ItemId) -> None:
        async with services.config_lock:
            await _delete(services, store_config.ZONES, zone_id, "zone")
            await sync_zones(services)

    # ------------------------------------------------------------------------------------------ alert rules
    @get("/alerts", operation_id="listAlertRules")
    async def list_alerts(self, services: ServicesDep) -> list[AlertRule]:
        return await services.db(store_config.ALERT_RULES.list)

    @get("/alerts/{rule_id:str}", operation_id="getAlertRule", raises=[NotFoundException])
    async def get_alert(self, services: ServicesDep, rule_id: ItemId) -> AlertRule:
        return await _get(services, store_config.ALERT_RULES, rule_id, "alert rule")

    @post("/alerts", operation_id="createAlertRule", opt=WRITE, raises=[Conflict])
    async def create_alert(self, services: ServicesDep, data: JSONBody[AlertRule]) -> AlertRule:
        zones = await services.db(store_config.ZONES.list)
        check_alert_rule(data, [z.id for z in zones])
        return await _create(services, store_config.ALERT_RULES, data, "alert rule")

    @put("/alerts/{rule_id:str}", operation_id="replaceAlertRule", opt=WRITE)
    async def replace_alert(self, services: ServicesDep, rule_id: ItemId, data: JSONBody[AlertRule]) -> AlertRule:
        _check_path_id(rule_id, data.id)
        zones = await services.db(store_config.ZONES.list)
        check_alert_rule(data, [z.id for z in zones])
        return await services.db(store_config.ALERT_RULES.put, data)

    @delete("/alerts/{rule_id:str}", operation_id="deleteAlertRule", opt=WRITE, raises=[NotFoundException])
    async def delete_alert(self, services: ServicesDep, rule_id: ItemId) -> None:
        await _delete(services, store_config.ALERT_RULES, rule_id, "alert rule")

    # ------------------------------------------------------------------------------------------ templates
    @get("/templates", operation_id="listTemplates")
    async def list_templates(self, services: ServicesDep) -> list[ConfigTemplate]:
        return await services.db(TEMPLATES.list)

    @get("/templates/{template_id:str}", operation_id="getTemplate", raises=[NotFoundException])
    async def get_template(self, services: ServicesDep, template_id: ItemId) -> ConfigTemplate:
        return await _get(services, TEMPLATES, template_id, "template")

    @post("/templates", operation_id="createTemplate", opt=WRITE, raises=[Conflict])
    async def create_template(self, services: ServicesDep, data: JSONBody[ConfigTemplate]) -> ConfigTemplate:
        _check_template(data)
        return await _create(services, TEMPLATES, data, "template")

    @put("/templates/{template_id:str}", operation_id="replaceTemplate", opt=WRITE)
    async def replace_template(
        self, services: ServicesDep, template_id: ItemId, data: JSONBody[ConfigTemplate]
    ) -> ConfigTemplate:
        _check_path_id(template_id, data.id)
        _check_template(data)
        return await services.db(TEMPLATES.put, data)

    @delete("/templates/{template_id:str}", operation_id="deleteTemplate", opt=WRITE, raises=[NotFoundException])
    async def delete_template(self, services: ServicesDep, template_id: ItemId) -> None:
        await _delete(services, TEMPLATES, template_id, "template")

    @post(
        "/templates/{template_id:str}/apply",
        operation_id="applyTemplate",
        opt=WRITE,
        status_code=HTTP_200_OK,
        raises=[NotFoundException],
        summary="Write the template's zones, alert rules and routers in one "
        "transaction (replace=true also removes the others) and make the zones live",
    )
    async def apply_template(self, services: ServicesDep, template_id: ItemId) -> TemplateApplied:
        template: ConfigTemplate = await _get(services, TEMPLATES, template_id, "template")

        def apply(con: duckdb.DuckDBPyConnection) -> int:
            removed = 0
            with transaction(con):
                if template.replace:
                    for table, keep in (
                        (store_config.ZONES, template.zones),
                        (store_config.ALERT_RULES, template.alert_rules),
                        (store_config.ROUTERS, template.routers),
                    ):
                        ids = {item.id for item in keep}
                        for item in table.list(con):
                            if item.id not in ids:
                                table.delete(con, item.id)
                                removed += 1
                for zone in template.zones:
                    store_config.ZONES.put(con, zone)
                for rule in template.alert_rules:
                    store_config.ALERT_RULES.put(con, rule)
                for router in template.routers:
                    store_config.ROUTERS.put(con, router)
            return removed

        async with services.config_lock:
            zone_ids = {z.id for z in template.zones}
            if not template.replace:
                zone_ids |= {z.id for z in await services.db(store_config.ZONES.list)}
            for rule in template.alert_rules:  # rules may only name zones that will exist
                check_alert_rule(rule, zone_ids)
            removed = await services.db(apply)
            await sync_zones(services)
        return TemplateApplied(
            template_id=template.id,
            zones=len(template.zones),
            alert_rules=len(template.alert_rules),
            routers=len(template.routers),
            removed=removed,
        )


def _check_template(template: ConfigTemplate) -> None:
    check_id(template.id)
    check_name(template.name)
    check_description(template.description)
    for kind, items in (
        ("zone", template.zones),
        ("alert rule", template.alert_rules),
        ("router", template.routers),
    ):
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise unprocessable(f"duplicate {kind} ids in the template")
    for zone in template.zones:
        check_zone(zone)
    for router in template.routers:
        check_router(router)
    zone_ids = {z.id for z in template.zones}
    for rule in template.alert_rules:
        # zones outside the template are checked again when it is applied
        check_alert_rule(rule, zone_ids | set(rule.zone_ids))
