"""Attacks on the platform's HTTP API (docs/platform-api.md §2): no token, a made-up token,
a read-only token used to write, and one department's token on another's input. A correct
platform answers 401 or 403 and stores nothing.
"""

from __future__ import annotations

import secrets

from acceptance.attacks.base import ALLOWED, REFUSED, Attempt, Context, attack
from acceptance.observe import ApiError, PlatformClient

API = "/api/v1"


def _api_attempt(ident: str, action: str, path: str) -> Attempt:
    return Attempt(ident, "api_client", action, path, "api", [REFUSED])


def _outcome(a: Attempt, status: int | None) -> Attempt:
    a.outcome = REFUSED if status in (401, 403) else ALLOWED
    a.note = f"HTTP {status}"
    return a


def _get_status(client: PlatformClient, path: str, auth: bool) -> int | None:
    try:
        client.get(path, {"limit": 1}, auth=auth)
        return 200
    except ApiError as exc:
        return exc.status


@attack
def api_without_token(ctx: Context) -> list[Attempt]:
    path = f"{API}/transactions"
    anonymous = _api_attempt("api-no-token", "read every station's sales without a token",
                             path)
    forged = _api_attempt("api-made-up-token", "read with a token the platform never issued",
                          path)
    stranger = PlatformClient(ctx.api.base_url, secrets.token_urlsafe(24), ctx.api.timeout)
    return [_outcome(anonymous, _get_status(ctx.api, path, auth=False)),
            _outcome(forged, _get_status(stranger, path, auth=True))]


@attack
def api_read_token_writes(ctx: Context) -> list[Attempt]:
    path = f"{API}/posted-prices"
    a = _api_attempt("api-read-token-writes", "post a price with a read-only token", path)
    if ctx.read_api is None:
        a.note = "the harness has no read-only token of this platform (docs/sut.md read_token)"
        return [a]
    # in force only from 2100: should a broken platform store it, it changes nothing checked
    status, _ = ctx.read_api.post(path, {"station_id": ctx.a, "grade": "92", "price_fen": 1,
                                         "valid_from": "2100-01-01T00:00:00+08:00"})
    return [_outcome(a, status)]


@attack
def api_department_crossing(ctx: Context) -> list[Attempt]:
    """The tax bureau's token posts a verification record, which is market regulation's."""
    from datetime import UTC, datetime

    path = f"{API}/verification-records"
    a = _api_attempt("api-other-department-writes", "the tax bureau's token posts a "
                     "metrology verification record (market regulation's input)", path)
    if ctx.tax_api is None:
        a.note = "the harness has no tax-bureau token of this platform (docs/sut.md tax_token)"
        return [a]
    day_before = datetime.fromtimestamp(ctx.marker_time, UTC)
    status, _ = ctx.tax_api.post(path, {
        "station_id": ctx.a, "device": "D1", "kind": "verification", "result": "pass",
        "performed_at": day_before.isoformat(),
        "valid_until": day_before.replace(year=day_before.year + 1).isoformat(),
        "certificate_no": "SEC-1-ATTACK", "organisation": "forged",
        "signatures": {"maintainer": "x", "verifier": "x", "station": "x"}})
    return [_outcome(a, status)]
