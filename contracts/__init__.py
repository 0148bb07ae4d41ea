"""The published contracts (公开接口约定), as data: the Modbus register profiles of the
devices (docs/register-map.md) and the JSON Schemas of the uplink (docs/uplink.md).

The one place the devices, the reference collector, the reference platform and a vendor's
products read them from; no code here but their locations, so collector/ and central/ share
them without reaching into each other or into the simulation."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
REGISTER_PROFILES = HERE / "register_profiles"  # dispenser.yaml, tank_gauge.yaml
UPLINK_SCHEMAS = HERE / "uplink_schemas"  # <kind>.schema.json (draft 2020-12)
