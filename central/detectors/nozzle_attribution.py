"""Nozzle attribution (枪级计量误差归因): which nozzle's meter makes the tank gain.

Interval model (domain brief §4, [D] formulation), per tank over 15-min readings:

    r_i = G_i − G_{i+1} − sales20_i = −Σ_n a_n q_{n,i} + λ Δt_i + ε_i

q_{n,i} is nozzle n's 20 °C volume in interval i (time-apportioned), a_n its apparent
over-registration (+1 % = the meter shows 1 % more than it delivers: customers get less),
λ a leak/evaporation rate. The gauge noise of each reading telescopes across intervals, so
the fit is the same model in cumulative form with one intercept per stretch of usable
intervals (central/detectors/wetstock.py `LevelsModel`: stretches end at deliveries, data
gaps > `max_gap_s`, off-line dispensers, frozen readings and intervals whose residual
exceeds `outlier_l` — a gauge step must not pass for a meter error).

Windows: the baseline is the tank's first `learn_days`; at each local midnight E after
baseline + `recent_days`, the recent window is (E − recent_days, E − guard_s] (the last
15 min are left out: a fill running at E is not known yet). A nozzle alarms (`meter_skim`,
device+nozzle+tank) when either

- shift: Δ = a_recent − a_base ≥ `min_shift_pct` (0.6 %: twice the ±0.3 % MPE, so
  honest drift and a recalibration inside the MPE stay below; pulse cheats are 1–20 %) and Δ / √(se_recent² + se_base²) ≥ `t_limit` (4);
- level: a_recent − a_ref ≥ `abs_limit_pct` (1 %, over 3× the MPE) and
  (a_recent − a_ref) / se_recent ≥ `t_level` (6) — for a cheat already active while the
  baseline was learnt; a_ref is the median of the tank's other nozzles when it has at
  least two others (a gauge calibration error biases every nozzle alike), else 0. The
  level test has the stricter t limit: on a tank with two nozzles of similar traffic their
  estimates are strongly anti-correlated and, with the simulated gauge's level-dependent
  errors, a week's estimates wander by ±1 % where the white-noise standard error says
  ±0.3 % (an honest 92# tank of UMB35 in a 60-day honest fleet run reached t = 4.7).

Both tests also ask the tank to agree: over the window it must have gained (sales beyond its
drop) at least `consistency` (½) of what the nozzle's estimate implies — for the shift test
the gain beyond the baseline's bias per litre against Δ × its volume, for the level test
the gain against a_recent × its volume. A nozzle cannot skim from a
tank that loses: hidden fills of another nozzle (a transaction filter) make the tank lose
and can fool the regression, not this check.

A nozzle needs at least `min_volume_l` in a window to be estimated. After an alarm the
nozzle is silent for `realert_days`. as_of = E.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from central.detectors.base import AlertProposal, Context, DayGrid, tank_horizon
from central.detectors.data import StationData
from central.detectors.wetstock import Fit, LevelsModel, TankSeries, learn_end, tank_series


@dataclass(frozen=True)
class NozzleAttributionLimits:
    learn_days: int = 14
    recent_days: int = 7
    t_limit: float = 6.0  # 5.0 gave 2 false meter_skim in 302 honest station-months
    t_level: float = 7.0
    min_shift_pct: float = 0.6
    abs_limit_pct: float = 1.0
    min_volume_l: float = 300.0
    realert_days: int = 7
    max_gap_s: int = 7200
    outlier_l: float = 60.0
    guard_s: int = 900
    inflate_max: float = 10.0
    min_dof: int = 30
    consistency: float = 0.5


class NozzleAttributionDetector:
    name: ClassVar[str] = "nozzle_attribution"
    kinds: ClassVar[tuple[str, ...]] = ("meter_skim",)

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, NozzleAttributionLimits())
        out: list[AlertProposal] = []
        for tank in sorted(set(data.tanks) | set(np.unique(data.inventory.tank).tolist())):
            s = tank_series(data, int(tank), ctx)
            if s is None or not s.nozzles:
                continue
            out += self._tank(data, ctx, lim, int(tank), s)
        return out

    def _tank(self, data: StationData, ctx: Context, lim: NozzleAttributionLimits, tank: int,
              s: TankSeries) -> list[AlertProposal]:
        horizon = tank_horizon(data, ctx, tank)
        levels = LevelsModel(s, lim.max_gap_s, lim.outlier_l)
        learnt = learn_end(int(s.t[0]), ctx.zone, lim.learn_days)
        if learnt > horizon:
            return []
        base = levels.fit(float(s.t[0]) - 1, learnt - lim.guard_s, lim.min_volume_l,
                          lim.min_dof, lim.inflate_max)
        grid = DayGrid(ctx.zone, learnt, max(horizon, learnt))
        first_e = learnt + lim.recent_days * 86400
        quiet: dict[int, int] = {}
        out = []
        t_lim = lim.t_limit * ctx.scale
        for e in grid.starts[(grid.starts >= first_e) & (grid.starts <= horizon)]:
            e = int(e)
            fit = levels.fit(e - lim.recent_days * 86400, e - lim.guard_s, lim.min_volume_l,
                             lim.min_dof, lim.inflate_max)
            if fit is None:
                continue
            for n, a in fit.estimate.items():
                if e < quiet.get(n, 0):
                    continue
                reason = self._test(n, a, fit, base, lim, ctx.scale, t_lim)
                if reason is None:
                    continue
                quiet[n] = e + lim.realert_days * 86400
                out.append(self._alert(data, ctx, tank, s, n, e, fit, base, reason))
        return out

    @staticmethod
    def _test(n: int, a: float, fit: Fit, base: Fit | None, lim: NozzleAttributionLimits,
              scale: float, t_lim: float) -> dict[str, Any] | None:
        se = fit.se[n]
        q = fit.volume_l[n]
        others = [v for k, v in fit.estimate.items() if k != n]
        ref = float(np.median(others)) if len(others) >= 2 else 0.0
        level = a - ref
        if base is not None and n in base.estimate and level * 100 >= lim.min_shift_pct * scale:
            delta = a - base.estimate[n]
            se_d = float(np.hypot(se, base.se[n]))
            bias = base.gain_l / base.sales_l if base.sales_l > 0 else 0.0
            gained = fit.gain_l - bias * fit.sales_l
            if (delta * 100 >= lim.min_shift_pct * scale and se_d > 0 and delta / se_d >= t_lim
                    and gained >= lim.consistency * delta * q):
                return {"test": "shift", "shift_pct": 100 * delta, "t": delta / se_d,
                        "min_shift_pct": lim.min_shift_pct * scale,
                        "tank_gain_beyond_baseline_l": gained, "implied_gain_l": delta * q,
                        "level_pct": 100 * level, "reference_pct": 100 * ref}
        if (level * 100 >= lim.abs_limit_pct * scale and se > 0
                and level / se >= lim.t_level * scale
                and fit.gain_l >= lim.consistency * a * q):
            return {"test": "level", "level_pct": 100 * level, "reference_pct": 100 * ref,
                    "t": level / se, "abs_limit_pct": lim.abs_limit_pct * scale,
                    "tank_gain_l": fit.gain_l, "implied_gain_l": a * q}
        return None

    @staticmethod
    def _alert(data: StationData, ctx: Context, tank: int, s: TankSeries, n: int, e: int,
               fit: Fit, base: Fit | None, reason: dict[str, Any]) -> AlertProposal:
        dev, noz = s.nozzles[n]
        day = DayGrid(ctx.zone, e - 1, e - 1).label(0)
        ev = {"tank": tank, "day": day, **reason, "estimate_pct": 100 * fit.estimate[n],
              "se_pct": 100 * fit.se[n], "window_days": None, "volume_l": fit.volume_l[n],
              "baseline_pct": None if base is None or n not in base.estimate
              else 100 * base.estimate[n],
              "baseline_se_pct": None if base is None or n not in base.se
              else 100 * base.se[n],
              "others": {f"{s.nozzles[k][0]}/{s.nozzles[k][1]}": 100 * v
                         for k, v in fit.estimate.items() if k != n},
              "residual_sigma_l": fit.sigma_l, "autocorrelation": fit.rho,
              "se_inflation": fit.inflate, "readings": fit.readings}
        ev.pop("window_days")
        return AlertProposal(
            "meter_skim", "critical", e, f"{dev} nozzle {noz}: meter over-registers",
            f"apparent meter error {100 * fit.estimate[n]:+.2f} % ± {100 * fit.se[n]:.2f} % "
            f"over the week to {day} ({reason['test']} test, t = {reason['t']:.1f}); the tank "
            f"{tank} drop is smaller than this nozzle's sales", ev,
            f"meter_skim/{dev}/{noz}/{day}", device=dev, nozzle=noz, tank=tank)
