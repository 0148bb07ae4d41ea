"""Tank variance (进销存差异): daily reconciliation at 20 °C with SIR-style limits learnt per
tank and a two-sided CUSUM → `tank_gain` / `tank_loss`, or `leak_suspected` (operational)
when the loss shows at the same rate in idle hours.

Daily variance v_d and sales s_d are GET /api/v1/reconciliation's numbers (the same array
function, central/reconciliation.py). A day whose end falls inside a delivery (a
delivery_start event 50 without its end yet, or an unexplained rise of at least
`open_rise_l` in the last 2 h before midnight) is merged with the next day (at most
`max_merge_days`), because the drop's record only arrives when it closes. A day on which
more than `max_frozen_share` of the gauge's readings repeat the previous one exactly is
left out (a stuck gauge: gauge_frozen's business, not a gain).

Baseline, from the tank's first `learn_days` segments (domain brief §4):

    β  = Σv / Σs over the learning days (outliers beyond `outlier_z` robust σ removed):
         the bias per litre of sales (honest meter errors within ±0.3 %, VCF and gauge
         calibration);
    σ  = max(1.4826 · MAD(v − βs), σ_prior),  σ_prior = max(`sigma_prior_pct` % × median
         daily sales, `sigma_prior_l` L)  — the floor protects short or lucky histories;
    σ_seg = √(n_days · σ² + (`delivery_sigma_pct` % × delivered)²)

Then per segment z = (v − β s) / σ_seg, clipped to ±`z_clip` (3.5: one odd day — a fill
running across midnight is booked on the next day while the midnight reading already saw
it, a one-off spill — moves the CUSUM by at most 3 of its h = 6; a persisting shift needs
several days), and the two-sided CUSUM

    S⁺ = max(0, S⁺ + z − k')  (loss: product missing)     S⁻ = max(0, S⁻ − z − k')  (gain)
    k' = k + `drift_allow_pct` % × s / σ_seg

k' lets honest meter drift inside the MPE pass: a +0.2 % drift of one nozzle of a tank
with two is ≈ 0.1 % of the tank's sales; it should not accumulate into a cheat alarm over
months (a fixed k alone would, on a busy tank).

Window test (the gauge's errors telescope: over n days the cumulative residual carries the
two end readings' error, 2 σ_r², plus what adds up, n σ_u²): for windows of the last 1 …
`window_days` segments, W = (±Σ clip(v − βs) − drift allowance) / √(2 σ_r² + n σ_u² +
deliveries' term) alarms above `window_h` (docs/detectors.md §2.1).

CUSUM alarms when S > h (k 0.5, h 6: in-control ARL ≈ 2,500 days per side by Siegmund's
approximation, a 1.5 σ shift — e.g. a 1 % skim of a 750 L/day nozzle against σ = 5 L —
alarms in about 7 days). After an alarm that side restarts at 0 and stays silent for
`realert_days`. At the end of learning, |β| beyond `beta_limit_pct` (1 %, the vendors'
"escalate" level) alarms too (a cheat active from the first day hides in β otherwise).

Loss classification: over the alarm's run-up window (≥ `min_window_days`), with the
excess loss rate λ = Σ(v − βs) / hours,

- the time term of the interval model (wetstock.LevelsModel: loss per hour not explained
  by any nozzle's sales) must be significant (t ≥ `classify_t`, 3) and ≥ `leak_ratio` × λ — a
  leak loses by the hour, a skim or hidden nozzle by the litre sold, and a one-off
  withdrawal is a step the model cuts out (`outlier_l`);
- the drop over idle stretches of at least `leak_min_stretch_h` (no sale, no delivery)
  must be positive and not significantly (2 SE) below `leak_ratio` × λ per hour; a
  stretch with a single-interval drop beyond `idle_step_l` (15 L ≈ 3.5 σ of a reading
  difference) is left out — a leak seeps, a hidden fill or a withdrawal takes tens of
  litres at once;

then `leak_suspected` (operational), otherwise `tank_loss`.

Leak test (SIR, domain brief §4): independently of the CUSUM, at each local midnight the
time term over the last `leak_window_days` (14) must stay below `leak_rate_l_per_h`
(0.38 L/h = 0.1 gph, half the 0.2 gph a leak detector must find); at or above it with
t ≥ `leak_t` and the idle stretches agreeing → `leak_suspected` (re-raised at most every
`realert_days`). This also catches a leak present from the first day, which the baseline
would otherwise learn as bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from central.detectors.base import AlertProposal, Context, DayGrid, tank_horizon
from central.detectors.data import StationData
from central.detectors.rolling_baseline import RollingBaseline, fit_baseline
from central.detectors.wetstock import (
    LevelsModel,
    TankSeries,
    idle_stretches,
    open_delivery_since,
    reading_sigma,
    tank_inputs,
    tank_series,
)
from central.reconciliation import tank_days

FILL_GUARD_S = 900  # fills overlapping the last interval before a decision may still run

@dataclass(frozen=True)
class TankVarianceLimits:
    learn_days: int = 14
    k: float = 0.5
    h: float = 6.0
    drift_allow_pct: float = 0.05
    sigma_prior_pct: float = 0.1
    sigma_prior_l: float = 5.0
    delivery_sigma_pct: float = 0.05
    beta_limit_pct: float = 1.0
    outlier_z: float = 4.0
    z_clip: float = 3.5
    realert_days: int = 7
    max_merge_days: int = 3
    max_frozen_share: float = 0.5
    open_rise_l: float = 300.0
    leak_ratio: float = 0.5
    leak_t: float = 4.0
    classify_t: float = 3.0
    leak_rate_l_per_h: float = 0.38
    leak_window_days: int = 14
    leak_min_stretch_h: float = 1.0
    idle_step_l: float = 15.0
    outlier_l: float = 60.0
    min_window_days: int = 7
    window_days: int = 14
    leak_defer_days: int = 10
    attribution_t: float = 3.0
    attribution_share: float = 0.5
    attribution_min_days: int = 4
    baseline_days: int = 28
    baseline_lag_days: int = 14
    window_h: float = 4.5
    u_sigma_prior_pct: float = 0.05
    u_sigma_prior_l: float = 1.0


@dataclass
class Segment:
    """One or more reconciled days decided together (a day ending inside a drop is merged
    with the next). Its sums are kept once read: read them only once `rows` is complete
    (`_segments` builds it from `rows` alone)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def as_of(self) -> int:
        return int(self.rows[-1]["day_end"])

    @cached_property
    def variance(self) -> float:
        return float(sum(r["variance_ml"] for r in self.rows))

    @cached_property
    def sales(self) -> float:
        return float(sum(r["sales_20c_ml"] for r in self.rows))

    @cached_property
    def delivered(self) -> float:
        return float(sum(r["deliveries_20c_ml"] for r in self.rows))

    @property
    def label(self) -> str:
        return str(self.rows[-1]["day"])


class TankVarianceDetector:
    name: ClassVar[str] = "tank_variance"
    kinds: ClassVar[tuple[str, ...]] = ("tank_gain", "tank_loss", "leak_suspected")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, TankVarianceLimits())
        out: list[AlertProposal] = []
        for tank in sorted(set(data.tanks) | set(np.unique(data.inventory.tank).tolist())):
            out += self._tank(data, ctx, lim, int(tank))
        return out

    def _tank(self, data: StationData, ctx: Context, lim: TankVarianceLimits,
              tank: int) -> list[AlertProposal]:
        horizon = tank_horizon(data, ctx, tank)
        rows = [r for r in tank_days(data.station_id, tank_inputs(data, tank), ctx.zone,
                                     ctx.vcf) if r["day_end"] <= horizon]
        series = tank_series(data, tank, ctx)
        if not rows or series is None:
            return []
        segments = self._segments(data, lim, tank, rows, series)
        leaks = self._leak_test(ctx, lim, tank, series, horizon)
        if len(segments) < lim.learn_days:
            ctx.note(self.name, f"tank {tank}: learning its baseline "
                                f"({len(segments)}/{lim.learn_days} days)", tank=tank)
            return leaks
        learn, rest = segments[:lim.learn_days], segments[lim.learn_days:]
        beta, sigma, base = self._baseline(learn, lim)
        sigma_g = reading_sigma(series, learn[-1].as_of, 3.0, 1.0)
        incomplete = data.incomplete_devices(data.tank_devices(tank), horizon)
        common = {"tank": tank, "beta_pct": 100 * beta, "sigma_ml": sigma, "k": lim.k,
                  "h": lim.h * ctx.scale, "learn_from": learn[0].rows[0]["day"],
                  "learn_to": learn[-1].label, **base,
                  "learn_span": (int(learn[0].rows[0]["opening_time"]), learn[-1].as_of)}
        if incomplete:
            common["incomplete_devices"] = incomplete
        out: list[AlertProposal] = leaks
        if abs(beta) * 100 > lim.beta_limit_pct * ctx.scale:
            side = "loss" if beta > 0 else "gain"
            alert = self._alert(ctx, lim, tank, side, learn, learn, beta, sigma, sigma_g,
                                series, {**common, "reason": "baseline bias beyond limit",
                                         "beta_limit_pct": lim.beta_limit_pct * ctx.scale})
            if alert is not None:  # None defers a leak, only ever with an alarm_since: not here
                out.append(alert)
        s_pos = s_neg = 0.0
        start_pos = start_neg = 0
        quiet_pos = quiet_neg = -1
        h = lim.h * ctx.scale
        hw = lim.window_h * ctx.scale
        sigma_r, sigma_u = self._noise_split(learn, sigma_g * 1000.0, base, lim)
        common["sigma_u_ml"], common["sigma_reading_ml"] = sigma_u, sigma_r
        # the window test: from `wfrom_*` on, windows of the last 1 … window_days segments
        wfrom_pos = wfrom_neg = 0
        pending_loss: tuple[int, int] | None = None  # (since, first segment) of a deferred loss
        baseline = RollingBaseline(segments, lim.learn_days, lim.baseline_days,
                                   lim.baseline_lag_days, lim.outlier_z)
        resid = np.zeros(len(rest))
        for i, seg in enumerate(rest):
            resid[i] = baseline.residual(lim.learn_days + i)
            n = len(seg.rows)
            # scalars in Python floats: numpy's per-call cost on scalars, here and in
            # `_window`, was about a quarter of the detector's time (cProfile, banner run 33);
            # the values are the same to the bit (IEEE sqrt, min/max clip)
            sd = math.sqrt(n * sigma ** 2 + (lim.delivery_sigma_pct / 100 * seg.delivered) ** 2)
            z_raw = float(resid[i]) / sd
            z = min(max(z_raw, -lim.z_clip), lim.z_clip)
            k = lim.k + lim.drift_allow_pct / 100 * seg.sales / sd
            if s_pos == 0:
                start_pos = i
            if s_neg == 0:
                start_neg = i
            s_pos = max(0.0, s_pos + z - k)
            s_neg = max(0.0, s_neg - z - k)
            w_pos, n_pos = self._window(rest, resid, wfrom_pos, i, sigma_r, sigma_u, lim, +1)
            w_neg, n_neg = self._window(rest, resid, wfrom_neg, i, sigma_r, sigma_u, lim, -1)
            for side in ("loss", "gain"):
                s = s_pos if side == "loss" else s_neg
                w, wn = (w_pos, n_pos) if side == "loss" else (w_neg, n_neg)
                quiet = quiet_pos if side == "loss" else quiet_neg
                if s <= h and w <= hw:
                    continue
                first = (i - wn + 1) if w > hw else (start_pos if side == "loss"
                                                       else start_neg)
                if seg.as_of >= quiet:
                    if side == "loss" and pending_loss is not None:
                        first = min(first, pending_loss[1])
                    window = rest[first:i + 1]
                    ev = {**common, "day": seg.label, "variance_ml": seg.variance,
                          "sales_20c_ml": seg.sales, "z": z_raw, "cusum": s,
                          "window_statistic": w, "window_h": hw,
                          "test": "window" if w > hw else "cusum",
                          "window_from": window[0].rows[0]["day"], "window_days": len(window),
                          "excess_ml": float(resid[first:i + 1].sum())}
                    since = seg.as_of if pending_loss is None else pending_loss[0]
                    alert = self._alert(ctx, lim, tank, side, window, rest[:i + 1], beta,
                                        sigma, sigma_g, series, ev, since)
                    if alert is None:  # a loss that looks like a leak but is not proven yet
                        if pending_loss is None:
                            pending_loss = (seg.as_of, first)
                        continue  # keep the alarm standing; decide again tomorrow
                    if side == "loss":
                        pending_loss = None
                    out.append(alert)
                    quiet = seg.as_of + lim.realert_days * 86400
                # the alarm's days, and those of the lag after it, never enter the baseline
                # (a persisting cheat alarms again within the lag: it is never learnt)
                baseline.suspect(lim.learn_days + first, lim.learn_days + i,
                                 seg.as_of + lim.baseline_lag_days * 86400)
                if side == "loss":
                    s_pos, quiet_pos, wfrom_pos = 0.0, quiet, i + 1
                else:
                    s_neg, quiet_neg, wfrom_neg = 0.0, quiet, i + 1
        return out

    @staticmethod
    def _noise_split(learn: list[Segment], sigma_g: float, base: dict[str, Any],
                     lim: TankVarianceLimits) -> tuple[float, float]:
        """(σ_r, σ_u), ml: the daily residual's part that telescopes (the two midnight
        readings, 2 σ_r²) and the part that adds up day by day (σ_u² per day), from the
        learning residuals against the test's own baseline (β per litre sold, δ per litre
        delivered): a reading error appears in two neighbouring days with opposite signs,
        so the lag-1 autocovariance is −σ_r². The robust variance γ0 (MAD²) splits into
        2 σ_r² + σ_u² with σ_r² = −ρ·γ0 held between the gauge's idle-interval noise σ_g² and
        γ0/2; σ_u is floored by a prior (max(`u_sigma_prior_pct` % of daily sales,
        `u_sigma_prior_l` L)), and γ0 by the learnt daily σ's prior."""
        v = np.array([s.variance for s in learn])
        sales = np.array([s.sales for s in learn])
        dl = np.array([s.delivered for s in learn])
        b, d = fit_baseline(v, sales, dl, lim.outlier_z)
        e = v - b * sales - d * dl
        e = e - np.median(e)
        gamma0 = max((1.4826 * float(np.median(np.abs(e)))) ** 2, base["sigma_prior_ml"] ** 2)
        clipped = np.clip(e, -3 * np.sqrt(gamma0), 3 * np.sqrt(gamma0))
        denom = float(np.sum(clipped * clipped))
        rho = float(np.sum(clipped[1:] * clipped[:-1]) / denom) if denom > 0 else 0.0
        var_r = min(max(-rho * gamma0, sigma_g ** 2), gamma0 / 2)
        prior = max(lim.u_sigma_prior_pct / 100 * base["median_daily_sales_20c_ml"],
                    lim.u_sigma_prior_l * 1000.0)
        return float(np.sqrt(var_r)), max(float(np.sqrt(max(gamma0 - 2 * var_r, 0.0))), prior)

    @staticmethod
    def _window(rest: list[Segment], resid: np.ndarray, first: int, i: int, sigma_r: float,
                sigma_u: float, lim: TankVarianceLimits, sign: int) -> tuple[float, int]:
        """Largest standardised excess over the windows of the last 1 … `window_days`
        segments ending at segment i (none before `first`): the cumulative (clipped) residual, whose
        gauge errors telescope (only the two end readings count, 2 σ_r²) while the rest
        adds up (n σ_u²), less the honest-drift allowance. sign +1 = loss, −1 = gain."""
        best, best_n = 0.0, 0
        total = sales = delivered = 0.0
        days = 0
        for j in range(i, max(first, i - lim.window_days + 1) - 1, -1):
            seg = rest[j]
            # one odd day (a fill across midnight, a one-off spill) moves the sum by at most
            # z_clip of its own σ, as in the CUSUM; a persisting shift needs several days
            cap = lim.z_clip * math.sqrt(2 * sigma_r ** 2 + len(seg.rows) * sigma_u ** 2)
            total += min(max(float(resid[j]), -cap), cap)
            sales += seg.sales
            delivered += seg.delivered
            days += len(seg.rows)
            sd = math.sqrt(2 * sigma_r ** 2 + days * sigma_u ** 2
                           + (lim.delivery_sigma_pct / 100 * delivered) ** 2)
            stat = (sign * total - lim.drift_allow_pct / 100 * sales) / sd
            if stat > best:
                best, best_n = stat, i - j + 1
        return best, best_n

    @staticmethod
    def _leak_test(ctx: Context, lim: TankVarianceLimits, tank: int, series: TankSeries,
                   horizon: int) -> list[AlertProposal]:
        """SIR-style leak test at each local midnight over the last `leak_window_days`:
        the interval model's time term λ (loss per hour that no sale explains) at least
        `leak_rate_l_per_h` with t ≥ `leak_t`, and the idle stretches agreeing."""
        model = LevelsModel(series, 7200, lim.outlier_l)
        first = int(series.t[0]) + lim.leak_window_days * 86400
        grid = DayGrid(ctx.zone, first, max(first, horizon))
        sigma_g = reading_sigma(series, horizon, 3.0, 1.0)
        out: list[AlertProposal] = []
        quiet = 0
        for e in grid.starts[(grid.starts >= first) & (grid.starts <= horizon)]:
            e = int(e)
            if e < quiet:
                continue
            t0 = e - lim.leak_window_days * 86400
            fit = model.fit(t0, e - FILL_GUARD_S, 300.0, 30, 10.0)
            if fit is None or fit.rate_se <= 0:
                continue
            lam, t = fit.rate_l_per_h, fit.rate_l_per_h / fit.rate_se
            if lam < lim.leak_rate_l_per_h * ctx.scale or t < lim.leak_t * ctx.scale:
                continue
            idle = _idle_rate(series, t0, e, sigma_g, lim)
            if not _idle_agrees(idle, lim.leak_ratio * lam):
                continue
            quiet = e + lim.realert_days * 86400
            day = DayGrid(ctx.zone, e - 1, e - 1).label(0)
            out.append(AlertProposal(
                "leak_suspected", "warning", e, f"tank {tank}: steady loss, leak suspected",
                f"tank {tank} lost {lam:.2f} L/h (± {fit.rate_se:.2f}) beyond its sales over "
                f"the {lim.leak_window_days} days to {day}, also while idle "
                f"({idle['rate_l_per_h']:.2f} L/h)", {
                    "tank": tank, "day": day, "rate_l_per_h": lam, "se_l_per_h": fit.rate_se,
                    "t": t, "idle": idle, "window_days": lim.leak_window_days,
                    "limit_l_per_h": lim.leak_rate_l_per_h * ctx.scale},
                f"leak_suspected/T{tank}/{day}/rate", tank=tank))
        return out

    @staticmethod
    def _segments(data: StationData, lim: TankVarianceLimits, tank: int,
                  rows: list[dict[str, Any]], series: TankSeries) -> list[Segment]:
        segments: list[Segment] = []
        current = Segment()
        for r in rows:
            current.rows.append(r)
            end = int(r["day_end"])
            still_open = (open_delivery_since(data, tank, end) is not None
                          or _rising_at(series, end, lim.open_rise_l, data, tank))
            if still_open and len(current.rows) < lim.max_merge_days:
                continue
            t0, t1 = int(current.rows[0]["opening_time"]), int(current.rows[-1]["closing_time"])
            inside = (series.t[:-1] >= t0) & (series.t[1:] <= t1)
            if not inside.any() or series.frozen[inside].mean() <= lim.max_frozen_share:
                segments.append(current)  # else: the gauge was stuck; the day says nothing
            current = Segment()
        return segments  # an unfinished merge waits for its next day

    @staticmethod
    def _baseline(learn: list[Segment],
                  lim: TankVarianceLimits) -> tuple[float, float, dict[str, Any]]:
        v = np.array([s.variance for s in learn])
        s = np.array([s.sales for s in learn])
        n_days = np.array([len(seg.rows) for seg in learn])
        med_sales = float(np.median(s / n_days))
        prior = max(lim.sigma_prior_pct / 100 * med_sales, lim.sigma_prior_l * 1000.0)
        use = (s > 0.2 * med_sales) & (s > 0)
        beta0 = float(np.median(v[use] / s[use])) if use.any() else 0.0
        e0 = v - beta0 * s
        sig0 = max(1.4826 * float(np.median(np.abs(e0 - np.median(e0)))), prior)
        keep = np.abs(e0) <= lim.outlier_z * sig0 * np.sqrt(n_days)
        beta = float(v[keep].sum() / s[keep].sum()) if s[keep].sum() > 0 else 0.0
        e = (v - beta * s)[keep]
        robust = 1.4826 * float(np.median(np.abs(e - np.median(e)))) if len(e) else 0.0
        sigma = max(robust, prior)
        return beta, sigma, {"sigma_robust_ml": robust, "sigma_prior_ml": prior,
                             "learn_days_used": int(keep.sum()),
                             "median_daily_sales_20c_ml": med_sales}

    def _alert(self, ctx: Context, lim: TankVarianceLimits, tank: int, side: str,
               window: list[Segment], history: list[Segment], beta: float, sigma: float,
               sigma_g: float, series: TankSeries, ev: dict[str, Any],
               alarm_since: int | None = None) -> AlertProposal | None:
        """The alert of an alarm; None while a loss looks like a leak (the time term and the
        idle stretches both carry at least `leak_ratio` of it) without proof yet (t below
        `classify_t`), for at most `leak_defer_days` after the alarm: a leak must not be
        called theft for want of idle hours, and theft must not wait for ever."""
        seg = window[-1]
        kind = "tank_gain" if side == "gain" else "tank_loss"
        if side == "loss":
            while len(window) < lim.min_window_days and len(history) > len(window):
                window = history[-len(window) - 1:]
            t0 = int(window[0].rows[0]["opening_time"])
            hours = (seg.as_of - t0) / 3600.0
            # the baseline alarm (bias beyond the limit) measures the loss against zero
            ref = 0.0 if "beta_limit_pct" in ev else beta
            excess = sum(w.variance - ref * w.sales for w in window) / 1000.0
            rate = excess / hours if hours > 0 else 0.0
            idle = _idle_rate(series, t0, seg.as_of, sigma_g, lim)
            fit = LevelsModel(series, 7200, lim.outlier_l).fit(
                t0, seg.as_of - FILL_GUARD_S, 300.0, 30, 10.0)
            lam = {"rate_l_per_h": None, "se_l_per_h": None} if fit is None else {
                "rate_l_per_h": fit.rate_l_per_h, "se_l_per_h": fit.rate_se}
            ev["loss_rate"] = {"excess_l_per_h": rate, "idle": idle, "time_term": lam}
            leak_like = (fit is not None and rate > 0 and fit.rate_se > 0
                         and fit.rate_l_per_h >= lim.leak_ratio * rate
                         and idle["stretches"] > 0
                         and idle["rate_l_per_h"] >= lim.leak_ratio * rate)
            if (leak_like and fit is not None and fit.rate_l_per_h / fit.rate_se >= lim.classify_t
                    and _idle_agrees(idle, lim.leak_ratio * rate)):
                kind = "leak_suspected"
            elif (leak_like and alarm_since is not None
                  and seg.as_of - alarm_since < lim.leak_defer_days * 86400):
                return None
        excess_l = float(ev.get("excess_ml", seg.variance - beta * seg.sales)) / 1000.0
        titles = {"tank_gain": "books exceed the tank's physical drop",
                  "tank_loss": "product missing beyond the limit",
                  "leak_suspected": "steady loss also in idle hours: leak suspected"}
        if "beta_limit_pct" in ev:
            detail = (f"tank {tank}, learning period {window[0].rows[0]['day']} … {seg.label}: "
                      f"variance {100 * beta:+.2f} % of sales "
                      f"({'sold more than drawn' if side == 'gain' else 'product missing'}; "
                      f"limit ±{ev['beta_limit_pct']:.2f} %)")
        else:
            detail = (f"tank {tank}, {ev.get('window_from', window[0].label)} … {seg.label}: "
                      f"{abs(excess_l):.1f} L "
                      f"{'more sold than drawn' if side == 'gain' else 'missing'} beyond the "
                      f"learnt bias {100 * beta:+.3f} % (σ {sigma / 1000:.1f} L/day)")
        device = nozzle = None
        if kind == "tank_gain" and "beta_limit_pct" not in ev:
            found = _attribute(series, lim, ev["learn_span"],
                               (int(window[0].rows[0]["opening_time"]), seg.as_of), -excess_l)
            ev["attribution"] = found
            if found.get("named"):
                device, nozzle = found["device"], found["nozzle"]
                detail += f"; the gain comes from {device} nozzle {nozzle}"
        return AlertProposal(kind, "warning" if kind == "leak_suspected" else "critical",
                             seg.as_of, f"tank {tank}: {titles[kind]}", detail, ev,
                             f"{kind}/T{tank}/{seg.label}", device=device, nozzle=nozzle,
                             tank=tank)


def _attribute(series: TankSeries, lim: TankVarianceLimits, learn: tuple[int, int],
               window: tuple[int, int], gain_l: float) -> dict[str, Any]:
    """Which nozzle makes the tank gain (given that it does): the interval model (§2.2)
    fitted over the learning period and over the alarm's window; the nozzle whose apparent
    over-registration rose most, named when the rise is significant (t ≥
    `attribution_t`) and explains at least `attribution_share` of the window's gain. A
    conditional test: it runs only once the tank has alarmed, so it can be less strict than
    nozzle_attribution's unconditional one."""
    model = LevelsModel(series, 7200, lim.outlier_l)
    base = model.fit(learn[0], learn[1] - FILL_GUARD_S, 300.0, 30, 10.0)
    t0 = min(window[0], window[1] - lim.attribution_min_days * 86400)
    now = model.fit(max(t0, learn[1]), window[1] - FILL_GUARD_S, 100.0, 20, 10.0)
    if base is None or now is None:
        return {"named": False, "reason": "too few usable readings to fit"}
    best: dict[str, Any] = {"named": False}
    for col, a in now.estimate.items():
        if col not in base.estimate:
            continue
        shift = a - base.estimate[col]
        se = float(np.hypot(now.se[col], base.se[col]))
        t = shift / se if se > 0 else 0.0
        if t > best.get("t", -np.inf):
            dev, noz = series.nozzles[col]
            best = {"named": False, "device": dev, "nozzle": int(noz), "shift_pct": 100 * shift,
                    "t": t, "gain_explained_l": shift * now.volume_l[col]}
    if best.get("t", 0.0) >= lim.attribution_t and gain_l > 0 \
            and best["gain_explained_l"] >= lim.attribution_share * gain_l:
        best["named"] = True
    return best


def _rising_at(series: TankSeries, end: int, rise_l: float, data: StationData,
               tank: int) -> bool:
    """An unexplained rise of at least rise_l in the 2 h before `end` (less the last
    FILL_GUARD_S, whose fills may still be running at `end`), not covered by a delivery
    that closed by `end`: a drop still running at midnight (gauges that log no delivery
    events)."""
    t = series.t
    j1 = int(np.searchsorted(t, end - FILL_GUARD_S, "right")) - 1
    j0 = int(np.searchsorted(t, end - FILL_GUARD_S - 7200, "left"))
    if j1 <= j0:
        return False
    rise = series.v20[j1] - series.v20[j0] + series.sales20[j0:j1].sum()
    if rise < rise_l * 1000.0:
        return False
    dl = data.deliveries
    closed = (dl.tank == tank) & (dl.end_time <= end) & (dl.end_time >= t[j0])
    return not bool(closed.any())


def _idle_agrees(idle: dict[str, float], rate: float) -> bool:
    """The idle stretches lost product, at a rate not significantly (2 SE) below `rate`."""
    if idle["stretches"] == 0 or idle["rate_l_per_h"] <= 0:
        return False
    se = idle["rate_l_per_h"] / idle["t"] if idle["t"] else float("inf")
    return idle["rate_l_per_h"] + 2 * abs(se) >= rate


def _idle_rate(series: TankSeries, t0: int, t1: int, sigma_g: float,
               lim: TankVarianceLimits) -> dict[str, float]:
    """Loss rate over idle stretches of at least `leak_min_stretch_h` in [t0, t1], leaving
    out stretches with a single-interval drop beyond `idle_step_l`: a leak seeps (0.2 gph
    is 0.2 L per 15 min), a hidden fill or a withdrawal takes tens of litres at once."""
    a, b = idle_stretches(series)
    t = series.t
    hours = (t[b] - t[a]) / 3600.0
    use = (t[a] >= t0) & (t[b] <= t1) & (hours >= lim.leak_min_stretch_h)
    stepped = 0
    if use.any():
        drop_i = np.where(series.idle, series.v20[:-1] - series.v20[1:], -np.inf)
        # per stretch its biggest single-interval drop: [a_k, a_k+1) holds stretch k and
        # then only non-idle intervals (−inf)
        biggest = np.maximum.reduceat(drop_i, a)[use]
        jumps = biggest > lim.idle_step_l * 1000.0
        stepped = int(jumps.sum())
        keep = np.flatnonzero(use)[~jumps]
        use = np.zeros(len(a), dtype=bool)
        use[keep] = True
    drops = (series.v20[a[use]] - series.v20[b[use]]) / 1000.0
    total_h = float(hours[use].sum())
    if total_h <= 0:
        return {"rate_l_per_h": 0.0, "t": 0.0, "stretches": 0, "hours": 0.0,
                "stretches_with_a_jump": stepped}
    rate = float(drops.sum() / total_h)
    se = np.sqrt(len(drops) * 2 * sigma_g ** 2) / total_h
    return {"rate_l_per_h": rate, "t": float(rate / se) if se > 0 else 0.0,
            "stretches": int(len(drops)), "hours": total_h, "stretches_with_a_jump": stepped}
