"""TLS for the uplink (docs/uplink.md §1): the client context that verifies the broker.

With `mqtts://` the platform verifies the broker's certificate and host name against the CA
bundle of --mqtt-ca, or the system trust store without it. The harness has its own copy of
this (acceptance/tls.py): a vendor's platform shares nothing with the harness's code.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca: Path | None) -> ssl.SSLContext:
    """A context requiring a valid broker certificate for the host connected to; ValueError
    naming --mqtt-ca and the file when the bundle cannot be used."""
    if ca is None:
        return ssl.create_default_context()  # the system trust store
    try:
        return ssl.create_default_context(cafile=str(ca))
    except FileNotFoundError:
        raise ValueError(f"--mqtt-ca {ca}: no such file") from None
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        raise ValueError(f"--mqtt-ca {ca}: not a PEM CA bundle ({exc.reason or exc})") from None
    except OSError as exc:
        raise ValueError(f"--mqtt-ca {ca}: cannot read: {exc.strerror or exc}") from None
