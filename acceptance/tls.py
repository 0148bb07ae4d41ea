"""Throw-away TLS material for the MQTT uplink (docs/uplink.md §1): a CA made for one run
(or one `forecourt keys --tls DIR`) and a broker certificate it signs.

    files = make_tls(Path("run/tls"), hosts=["broker.example"])
    files.ca, files.cert, files.key  # ca.pem, broker.pem, broker.key (keys 0600)

The CA's private key is not kept: nothing else is ever signed with it, so a copy of the
directory can only be used to impersonate this one broker, for its short validity.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "broker.pem", "broker.key"
VALID_DAYS = 30
# Certificates are dated a little back so that a clock slightly behind still accepts them.
BACKDATE = dt.timedelta(minutes=5)
_DNS_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # CA certificate: what clients verify the broker with
    cert: Path  # broker certificate
    key: Path  # broker private key (0600)


def tls_files(directory: Path) -> TlsFiles:
    """Where make_tls writes in `directory` (whether or not it has yet)."""
    return TlsFiles(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """127.0.0.1 and localhost always (the harness's own broker), then `hosts` as given:
    IP addresses as IP entries, anything else as DNS names."""
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.DNSName("localhost")]
    for host in hosts:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            if not _DNS_RE.fullmatch(host):
                raise ValueError(f"--host {host!r}: expected a DNS name or an IP address") from None
            entry = x509.DNSName(host.lower())
        if entry not in names:
            names.append(entry)
    return names


def make_tls(directory: Path, hosts: Iterable[str] = (), days: int = VALID_DAYS) -> TlsFiles:
    """A fresh CA and a broker certificate for 127.0.0.1, localhost and `hosts`, valid for
    `days`, written to `directory` (created); the private key is written 0600."""
    if days < 1:
        raise ValueError(f"days {days}: expected at least 1")
    san = _san(hosts)  # bad host names are refused before anything is written
    now = dt.datetime.now(dt.UTC)
    start, end = now - BACKDATE, now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Forecourt HIL throw-away CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "Forecourt HIL MQTT broker")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = tls_files(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write(files.ca, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.key, key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), 0o600)
    return files


def client_context(ca: Path) -> ssl.SSLContext:
    """The harness's own MQTT connections (its monitor, SEC-1's attacker): verify the broker
    against `ca`, host name included."""
    return ssl.create_default_context(cafile=str(ca))


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as f:
        f.write(data)
