"""Bearer-token authentication and the roles of the API (docs/platform-api.md §2).

Roles: `read` (every GET), `admin` (everything), and one per department that sends the
platform its inputs — `market` (市场监管局), `tax` (税务局), `commerce` (商务局). Every role
reads everything except the audit log; who may write what is the table `PERMISSIONS`.

Tokens come from `--tokens FILE`:

    {"tokens": [{"token": "…", "role": "admin", "name": "harness"},
                {"sha256": "<64 hex digits>", "role": "tax", "name": "tax-bureau"}]}

(`sha256`, the hex digest of the token, instead of `token`: no plaintext on disk), or from
the environment: FORECOURT_PLATFORM_TOKENS (the same JSON), or FORECOURT_ADMIN_TOKEN /
FORECOURT_READ_TOKEN (one token each). With none of these the CLI generates one token per
role `admin` and `read` and prints them at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("read", "admin", "market", "tax", "commerce")
MIN_TOKEN_LENGTH = 16
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")

# Who may call what, beyond "every role may GET": (method, route) → roles allowed. A route
# is the path as the OpenAPI document writes it. The inputs belong to the department that
# issues them: the tax bureau files tax declarations (§5.8); market regulation (市场监管局)
# keeps the metrology records (§5.8), the posted prices it supervises (§5.10) and, as the
# inspector, the alert lifecycle (§5.12). The commerce bureau only reads (§5.15). The audit
# log is the administrators' (§5.17), and so is the integrity check of the stored records
# (§6). A write route missing here is admin-only (fail closed).
PERMISSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/api/v1/tax-declarations"): ("admin", "tax"),
    ("POST", "/api/v1/verification-records"): ("admin", "market"),
    ("POST", "/api/v1/posted-prices"): ("admin", "market"),
    ("POST", "/api/v1/alerts/{id}/status"): ("admin", "market"),
    ("GET", "/api/v1/audit"): ("admin",),
    ("GET", "/api/v1/integrity/chain"): ("admin",),
}


def roles_for(method: str, route: str) -> tuple[str, ...]:
    """The roles allowed to call `method route`."""
    if (method, route) in PERMISSIONS:
        return PERMISSIONS[(method, route)]
    return ROLES if method == "GET" else ("admin",)


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def may(self, method: str, route: str) -> bool:
        return self.role in roles_for(method, route)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode()).digest()


class TokenStore:
    """Looks tokens up by their SHA-256, so no plaintext is kept or compared."""

    def __init__(self, entries: list[tuple[str, str, str]]) -> None:
        """`entries`: (plaintext token, role, name)."""
        self._by_digest: dict[bytes, Principal] = {
            token_digest(token): Principal(name, role) for token, role, name in entries}

    @classmethod
    def from_digests(cls, entries: list[tuple[bytes, str, str]]) -> TokenStore:
        """`entries`: (SHA-256 digest of the token, role, name)."""
        store = cls([])
        store._by_digest = {digest: Principal(name, role) for digest, role, name in entries}
        return store

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, header: str | None) -> Principal | None:
        if not header or not header.startswith("Bearer "):
            return None
        digest = token_digest(header[len("Bearer "):])
        found = None
        for known, principal in self._by_digest.items():  # no early exit: constant time
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def parse_tokens(doc: Any, source: str) -> list[tuple[bytes, str, str]]:
    """(digest, role, name) of each entry of a token document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens"), list):
        raise TokenError(f"{source}: expected {{\"tokens\": [{{\"token\" or \"sha256\", "
                         f"\"role\", \"name\"}}]}}")
    out = []
    for i, entry in enumerate(doc["tokens"]):
        where = f"{source}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise TokenError(f"{where}: expected an object")
        token, hexdigest, role = entry.get("token"), entry.get("sha256"), entry.get("role")
        if (token is None) == (hexdigest is None):
            raise TokenError(f"{where}: expected exactly one of \"token\" (the token) or "
                             f"\"sha256\" (its hex SHA-256)")
        if hexdigest is not None:
            if not isinstance(hexdigest, str) or not _HEX_DIGEST.fullmatch(hexdigest):
                raise TokenError(f"{where}.sha256: expected 64 hex digits (sha256sum of the "
                                 f"token), found {str(hexdigest)[:80]!r}")
            digest = bytes.fromhex(hexdigest)
        elif not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_LENGTH:
            raise TokenError(f"{where}.token: expected a string of at least "
                             f"{MIN_TOKEN_LENGTH} characters")
        else:
            digest = token_digest(token)
        if role not in ROLES:
            raise TokenError(f"{where}.role: expected one of {ROLES}, found {role!r}")
        out.append((digest, role, str(entry.get("name") or f"{role}-{i}")))
    if not out:
        raise TokenError(f"{source}: no tokens")
    return out


def load_tokens(path: Path | None, env: Mapping[str, str] = os.environ) -> (
        tuple[TokenStore, dict[str, str]]):
    """The token store, and the tokens generated here (empty unless none were configured)."""
    if path is not None:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise TokenError(f"--tokens {path}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise TokenError(f"--tokens {path}: not JSON ({exc})") from None
        return TokenStore.from_digests(parse_tokens(doc, str(path))), {}
    if env.get("FORECOURT_PLATFORM_TOKENS"):
        try:
            doc = json.loads(env["FORECOURT_PLATFORM_TOKENS"])
        except json.JSONDecodeError as exc:
            raise TokenError(f"FORECOURT_PLATFORM_TOKENS: not JSON ({exc})") from None
        return TokenStore.from_digests(parse_tokens(doc, "FORECOURT_PLATFORM_TOKENS")), {}
    entries = []
    for var, role in (("FORECOURT_ADMIN_TOKEN", "admin"), ("FORECOURT_READ_TOKEN", "read")):
        if env.get(var):
            entries.extend(parse_tokens({"tokens": [{"token": env[var], "role": role,
                                                     "name": role}]}, var))
    if entries:
        return TokenStore.from_digests(entries), {}
    generated = {"admin": secrets.token_urlsafe(24), "read": secrets.token_urlsafe(24)}
    return TokenStore([(t, r, f"generated-{r}") for r, t in generated.items()]), generated
