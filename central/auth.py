"""Bearer-token authentication with two roles: `read` (GET) and `admin` (GET and POST).

Tokens come from `--tokens FILE`:

    {"tokens": [{"token": "…", "role": "admin", "name": "harness"},
                {"token": "…", "role": "read", "name": "dashboard"}]}

or from the environment: FORECOURT_PLATFORM_TOKENS (the same JSON), or
FORECOURT_ADMIN_TOKEN / FORECOURT_READ_TOKEN (one token each). With none of these the CLI
generates one token per role and prints them at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("read", "admin")
MIN_TOKEN_LENGTH = 16


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


class TokenStore:
    """Looks tokens up by their SHA-256, so no plaintext comparison leaks timing."""

    def __init__(self, entries: list[tuple[str, str, str]]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for token, role, name in entries:
            self._by_digest[hashlib.sha256(token.encode()).digest()] = Principal(name, role)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, header: str | None) -> Principal | None:
        if not header or not header.startswith("Bearer "):
            return None
        digest = hashlib.sha256(header[len("Bearer "):].strip().encode()).digest()
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


def parse_tokens(doc: Any, source: str) -> list[tuple[str, str, str]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens"), list):
        raise TokenError(f"{source}: expected {{\"tokens\": [{{\"token\", \"role\", \"name\"}}]}}")
    out = []
    for i, entry in enumerate(doc["tokens"]):
        where = f"{source}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise TokenError(f"{where}: expected an object")
        token, role = entry.get("token"), entry.get("role")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
            raise TokenError(f"{where}.token: expected a string of at least "
                             f"{MIN_TOKEN_LENGTH} characters")
        if role not in ROLES:
            raise TokenError(f"{where}.role: expected one of {ROLES}, found {role!r}")
        out.append((token, role, str(entry.get("name") or f"{role}-{i}")))
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
        return TokenStore(parse_tokens(doc, str(path))), {}
    if env.get("FORECOURT_PLATFORM_TOKENS"):
        try:
            doc = json.loads(env["FORECOURT_PLATFORM_TOKENS"])
        except json.JSONDecodeError as exc:
            raise TokenError(f"FORECOURT_PLATFORM_TOKENS: not JSON ({exc})") from None
        return TokenStore(parse_tokens(doc, "FORECOURT_PLATFORM_TOKENS")), {}
    entries = []
    for var, role in (("FORECOURT_ADMIN_TOKEN", "admin"), ("FORECOURT_READ_TOKEN", "read")):
        if env.get(var):
            entries.extend(parse_tokens({"tokens": [{"token": env[var], "role": role,
                                                     "name": role}]}, var))
    if entries:
        return TokenStore(entries), {}
    generated = {"admin": secrets.token_urlsafe(24), "read": secrets.token_urlsafe(24)}
    return TokenStore([(t, r, f"generated-{r}") for r, t in generated.items()]), generated
