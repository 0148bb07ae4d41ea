"""Reference central platform (市级监管平台): MQTT ingest, storage, analytics, HTTP API.

It stands in for a vendor's product, so it reads only published contracts (docs/uplink.md,
its JSON Schemas in contracts/uplink_schemas/, the fleet ledger CSV) and never imports sim/,
devices/, scenarios/, collector/ or acceptance/. Entry point: `central.cli.main`.

Modules: checks (admission) → store (batch storage, replay, status) ← ingest (MQTT);
db + migrate (SQLite/PostgreSQL); registry, keys, signing, schemas + fastcheck, topics;
reconciliation, continuity, vcf, alerts, inputs; resources, stations, params, auth,
openapi, http_api; cli.
"""
