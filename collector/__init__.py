"""Reference station collector (站端数据采集): Modbus devices → durable spool → signed MQTT uplink.

Stands in for a vendor's product: it reads only the published contracts (register profiles
`contracts/register_profiles/*.yaml`, docs/register-map.md, the endpoint map, docs/uplink.md) and never
imports sim/, devices/, acceptance/ or scenarios/. Entry points: `collector.cli`.
"""

__version__ = "forecourt-collector/0.1.0"
