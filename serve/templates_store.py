"""Storage of configuration templates (/config/templates): the config_templates table of store migration v4,
with the same (id, body, updated_at) layout as the other config tables."""

from __future__ import annotations

import msgspec

from wdp.serve.api_types import ConfigTemplate
from wdp.store.config import ConfigTable

TEMPLATE_JSON = msgspec.json.Decoder(ConfigTemplate)
TEMPLATES: ConfigTable[ConfigTemplate] = ConfigTable("config_templates", TEMPLATE_JSON)  # type: ignore[type-var]
