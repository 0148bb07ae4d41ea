"""The signed manifest of a run directory (docs/run-record.md "manifest.json").

Once nothing more is written for a run (`forecourt run` after its reports; `forecourt
check` / `forecourt report` after they rewrite files) the harness writes `manifest.json`:

    {"format": "forecourt-manifest/1", "created_at": "2026-04-23T08:00:00Z",
     "files": {"record.json": "<sha256 hex>", …},
     "signature": {"algorithm": "ed25519", "public_key": "<raw, hex>", "value": "<hex>"}}

The signature is Ed25519 over the canonical JSON (sorted keys, no spaces, UTF-8) of
{"format", "created_at", "files"}. The signing key is the harness machine's/user's own
(`key_path()`), created on first use; the public key in the manifest only says which key
signed, so a verifier must pin the key it got out of band (`verify --public-key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

MANIFEST_FILE = "manifest.json"
FORMAT = "forecourt-manifest/1"
KEY_ENV = "FORECOURT_MANIFEST_KEY"


class ManifestError(Exception):
    """No manifest to check, or one that cannot be read: the run cannot be verified."""


def key_path() -> Path:
    """$FORECOURT_MANIFEST_KEY, else ~/.config/forecourt/manifest-key.pem (XDG_CONFIG_HOME)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "forecourt" / "manifest-key.pem"


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`; a new one (file mode 0600) if there is none."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # O_EXCL: two runs finishing at once must not both create (and differ)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest signing key ({exc}); expected "
                            f"an unencrypted PEM Ed25519 private key (or set {KEY_ENV})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ManifestError(f"{path}: expected an Ed25519 private key, found "
                            f"{type(loaded).__name__}")
    return loaded


def public_key_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return raw.hex()


def signed_bytes(doc: dict[str, Any]) -> bytes:
    """What the signature covers: format, created_at and files, as canonical JSON."""
    body = {k: doc.get(k) for k in ("format", "created_at", "files")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def file_digests(run_dir: Path, exclude: set[Path]) -> dict[str, str]:
    """SHA-256 of every file under `run_dir` (relative POSIX path → hex) but `exclude`."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and path.resolve() not in exclude:
            out[path.relative_to(run_dir).as_posix()] = _sha256(path)
    return out


def write_manifest(run_dir: Path, key_file: Path | None = None,
                   now: Callable[[], float] = time.time) -> Path:
    """Hash every file of the run directory, sign, and write manifest.json; its path."""
    key_file = key_file or key_path()
    key = load_or_create_key(key_file)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now())),
        "files": file_digests(run_dir, _excluded(run_dir, key_file)),
    }
    doc["signature"] = {"algorithm": "ed25519", "public_key": public_key_hex(key),
                        "value": key.sign(signed_bytes(doc)).hex()}
    target = run_dir / MANIFEST_FILE
    tmp = target.with_name(f".{MANIFEST_FILE}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)  # a reader never sees half a manifest
    return target


def seal(run_dir: Path, prog: str) -> Path | None:
    """`write_manifest` at the end of a command; a failure is reported, never fatal (the
    verdict stands), and a stale manifest is removed so `verify` says there is none."""
    try:
        return write_manifest(run_dir)
    except (ManifestError, OSError) as exc:
        print(f"{prog}: {MANIFEST_FILE} not written: {exc}", file=sys.stderr)
        (run_dir / MANIFEST_FILE).unlink(missing_ok=True)
        return None


def verify_manifest(run_dir: Path, public_key: str | None = None) -> tuple[list[str], str]:
    """Check every hash and the signature. Returns (problems, signer's public key hex); each
    problem names the file or what is wrong. Raises ManifestError if there is nothing to
    check (not a directory, no or unreadable manifest)."""
    if not run_dir.is_dir():
        raise ManifestError(f"{run_dir}: not a directory (expected a run directory)")
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest (written at the end of `forecourt run`, "
                            "`check` and `report`)")
    doc = _read(path)
    sig = doc["signature"]
    problems = []
    if public_key is not None and public_key.lower() != sig["public_key"].lower():
        problems.append(f"signature: {MANIFEST_FILE} was signed with key "
                        f"{sig['public_key']}, not the pinned {public_key.lower()}")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"])).verify(
            bytes.fromhex(sig["value"]), signed_bytes(doc))
    except (ValueError, InvalidSignature):
        problems.append(f"signature: does not match {MANIFEST_FILE} (its file list or "
                        "created_at was changed, or it was not signed by "
                        f"{sig['public_key']})")
    listed: dict[str, str] = doc["files"]
    present = file_digests(run_dir, _excluded(run_dir, key_path()))
    for name in sorted(listed.keys() | present.keys()):
        if name not in present:
            problems.append(f"missing: {name}")
        elif name not in listed:
            problems.append(f"added: {name}")
        elif present[name] != listed[name]:
            problems.append(f"changed: {name} (sha256 {present[name][:16]}…, manifest "
                            f"{listed[name][:16]}…)")
    return problems, str(sig["public_key"])


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{path}: format: expected {FORMAT!r}")
    sig = doc.get("signature")
    files = doc.get("files")
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
        raise ManifestError(f"{path}: files: expected an object of path → sha256 hex")
    if not (isinstance(sig, dict) and sig.get("algorithm") == "ed25519"
            and isinstance(sig.get("public_key"), str) and isinstance(sig.get("value"), str)):
        raise ManifestError(f"{path}: signature: expected {{algorithm: ed25519, public_key, "
                            "value}")
    return doc


def _excluded(run_dir: Path, key_file: Path) -> set[Path]:
    """The manifest itself, its temporary, and the signing key if it lives in the run."""
    return {(run_dir / MANIFEST_FILE).resolve(),
            (run_dir / f".{MANIFEST_FILE}.tmp").resolve(), key_file.resolve()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
