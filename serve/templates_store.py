"""Storage of configuration templates (/config/templates).

The store's migrations have no template table yet, so this creates one with the same (id, body, updated_at)
layout as the other config tables, idempotently, when the app starts. TODO(lead): move into a store
migration (v4) and drop ``ensure_table``.
"""

from __future__ import annotations

import duckdb
import msgspec
from wdp.serve.api_types import ConfigTemplate
from wdp.store.config import ConfigTable

TEMPLATE_JSON = msgspec.json.Decoder(ConfigTemplate)
TEMPLATES: ConfigTable[ConfigTemplate] = ConfigTable("config_templates", TEMPLATE_JSON)  # type: ignore[type-var]


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS config_templates "
        "(id VARCHAR PRIMARY KEY, body VARCHAR NOT NULL, updated_at DOUBLE NOT NULL)"
    )
