"""What is under test: the reference collector/platform, a mutant, or a vendor's (docs/sut.md).

A scenario's `sut` is an object, or the path of a YAML file (relative to the scenario) with
the same content:

    collector:
      kind: reference | external
      mutant: drop            # reference only: a deliberately broken collector (QA)
      command: [vendor-collector, --map, "{endpoints}", --mqtt, "{broker}", ...]
      per_station: false      # external: one process per station ({station} in command)
    platform:
      kind: reference | external
      base_url: http://127.0.0.1:9000
      token_env: VENDOR_API_TOKEN   # or token: "..."
      broker: mqtt://127.0.0.1:1883 # the broker the vendor's platform subscribes to
      keys: vendor-keys.json        # the station keys it verifies with (docs/uplink.md §2)

Placeholders in an external command: {endpoints} {broker} {keys} {spool_dir} {profiles}
{station} (per_station only), {python} (this interpreter), {mqtt_credentials} (the broker
accounts' credentials file, docs/uplink.md §1; empty when the broker has no accounts),
{mqtt_ca} (the CA file to verify the broker with when it speaks TLS, `--mqtt-tls`; empty
otherwise).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from mutants.collector import MUTANTS

PLACEHOLDERS = ("endpoints", "broker", "keys", "spool_dir", "profiles", "station", "python",
                "mqtt_credentials", "mqtt_ca")


class SutError(ValueError):
    """A SUT description that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class CollectorSut:
    kind: str = "reference"
    mutant: str | None = None
    command: tuple[str, ...] = ()
    per_station: bool = False

    def argv(self, values: dict[str, str]) -> list[str]:
        """The external command with its placeholders filled in."""
        out = []
        for arg in self.command:
            try:
                out.append(arg.format(**values, python=sys.executable))
            except KeyError as exc:
                raise SutError(f"sut.collector.command: unknown placeholder {exc} in {arg!r}; "
                               f"expected one of {', '.join('{' + p + '}' for p in PLACEHOLDERS)}") from None
        return out


@dataclass(frozen=True)
class PlatformSut:
    kind: str = "reference"
    base_url: str | None = None
    token: str | None = field(default=None, repr=False)
    broker: str | None = None
    keys: str | None = None  # the key file the platform verifies signatures with
    # the external broker's accounts (docs/uplink.md §1 format): the stations' and
    # `fc-harness`'s, so that the harness can play a dishonest station and watch the broker
    mqtt_credentials: str | None = None
    # a read-only and a tax-bureau API token, for SEC-1's attempts to write with them
    read_token: str | None = field(default=None, repr=False)
    tax_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Sut:
    collector: CollectorSut = CollectorSut()
    platform: PlatformSut = PlatformSut()

    def describe(self) -> dict[str, Any]:
        """For run.json and reports (no secrets)."""
        c, p = self.collector, self.platform
        return {
            "collector": {"kind": c.kind, "mutant": c.mutant, "command": list(c.command),
                          "per_station": c.per_station},
            "platform": {"kind": p.kind, "base_url": p.base_url, "broker": p.broker},
        }


def _expect(cond: object, where: str, expected: str, found: Any) -> None:
    if not cond:
        raise SutError(f"{where}: expected {expected}, found {found!r}")


def _only(d: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    _expect(not extra, where, f"only the keys {sorted(allowed)}", extra)


def parse_sut(raw: Any, where: str = "sut", base_dir: Path | None = None,
              mutant: str | None = None) -> Sut:
    """Build a `Sut` from a scenario's `sut` value (object or file path) and a CLI mutant."""
    if isinstance(raw, str):
        path = (base_dir or Path.cwd()) / raw
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SutError(f"{where}: cannot read SUT file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SutError(f"{path}: not valid YAML: {exc}") from None
        where = str(path)
    raw = raw or {}
    _expect(isinstance(raw, dict), where, "an object with collector and/or platform", raw)
    _only(raw, {"collector", "platform"}, where)

    c = raw.get("collector") or {}
    cw = f"{where}.collector"
    _expect(isinstance(c, dict), cw, "an object", c)
    _only(c, {"kind", "mutant", "command", "per_station"}, cw)
    ckind = c.get("kind", "reference")
    _expect(ckind in ("reference", "external"), f"{cw}.kind", "'reference' or 'external'", ckind)
    cmut = mutant if mutant is not None else c.get("mutant")
    if cmut is not None:
        _expect(ckind == "reference", f"{cw}.mutant", "a mutant of the reference collector only",
                ckind)
        _expect(cmut in MUTANTS, f"{cw}.mutant", f"one of {list(MUTANTS)}", cmut)
    command = c.get("command", [])
    if ckind == "external":
        _expect(isinstance(command, list) and command and all(isinstance(a, str) for a in command),
                f"{cw}.command", "a non-empty list of strings (argv)", command)
    else:
        _expect(not command, f"{cw}.command", "no command for the reference collector", command)
    per_station = c.get("per_station", False)
    _expect(isinstance(per_station, bool), f"{cw}.per_station", "true or false", per_station)
    collector = CollectorSut(ckind, cmut, tuple(command), per_station)
    if ckind == "external":
        collector.argv({p: "x" for p in PLACEHOLDERS if p != "python"})  # placeholder check

    p = raw.get("platform") or {}
    pw = f"{where}.platform"
    _expect(isinstance(p, dict), pw, "an object", p)
    _only(p, {"kind", "base_url", "token", "token_env", "broker", "keys", "mqtt_credentials",
              "read_token", "tax_token"}, pw)
    for name in ("read_token", "tax_token"):
        _expect(p.get(name) is None or (isinstance(p[name], str) and p[name]),
                f"{pw}.{name}", "an API token (text)", p.get(name))
    pkind = p.get("kind", "reference")
    _expect(pkind in ("reference", "external"), f"{pw}.kind", "'reference' or 'external'", pkind)
    token = p.get("token")
    if "token_env" in p:
        token = os.environ.get(p["token_env"])
        _expect(token is not None, f"{pw}.token_env", "the name of a set environment variable",
                p["token_env"])
    if pkind == "external":
        url = p.get("base_url")
        _expect(isinstance(url, str) and url.startswith(("http://", "https://")),
                f"{pw}.base_url", "an http(s):// URL of the platform API", url)
        _expect(isinstance(token, str) and token, f"{pw}.token", "an API token (token or token_env)",
                token)
        _expect(isinstance(p.get("broker"), str) and p["broker"].startswith("mqtt://"),
                f"{pw}.broker", "the mqtt://host:port the platform subscribes to", p.get("broker"))
        keys = p.get("keys")
        _expect(isinstance(keys, str) and keys, f"{pw}.keys",
                "the path of the key file the platform verifies with (docs/uplink.md §2)", keys)
        keys_path = (base_dir or Path.cwd()) / cast(str, keys)  # a text, checked just above
        _expect(keys_path.is_file(), f"{pw}.keys", "an existing file", str(keys_path))
    creds = p.get("mqtt_credentials")
    if creds is not None:
        _expect(pkind == "external" and isinstance(creds, str) and creds,
                f"{pw}.mqtt_credentials", "the path of the external broker's credentials file "
                "(only with kind external)", creds)
        creds = str((base_dir or Path.cwd()) / creds)
        _expect(Path(creds).is_file(), f"{pw}.mqtt_credentials", "an existing file", creds)
    platform = PlatformSut(pkind, p.get("base_url"), token, p.get("broker"),
                           str((base_dir or Path.cwd()) / p["keys"]) if p.get("keys") else None,
                           creds, p.get("read_token"), p.get("tax_token"))
    return Sut(collector, platform)
