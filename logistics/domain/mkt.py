"""Mean kinetic temperature (USP <1160>), weighted by the time each reading stands for.

MKT = (dH/R) / -ln( sum(w_i * exp(-dH/(R*T_i))) / sum(w_i) ), T in kelvin, dH/R = 10,000 K
(dH = 83.144 kJ/mol, the USP default). Source: shared/domain.md, "Temperature".
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

DH_OVER_R_K = 10_000.0
KELVIN = 273.15


def reading_weights(
    times: Sequence[dt.datetime], start: dt.datetime, end: dt.datetime, max_gap: dt.timedelta
) -> list[float]:
    """Seconds each reading stands for: from its ts to the next one (or `end`), capped at `max_gap`.

    A reading stands for the time until the next reading, clipped to [start, end]; a silence longer
    than `max_gap` is not attributed to anyone (we do not know the temperature then).
    """
    weights = []
    for i, ts in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else end
        span = min(nxt, end, ts + max_gap) - max(ts, start)
        weights.append(max(span.total_seconds(), 0.0))
    return weights


def mean_kinetic_temperature(
    temps_c: Sequence[float], weights: Sequence[float], dh_over_r_k: float = DH_OVER_R_K
) -> float | None:
    """MKT in Celsius, or None when no reading carries any weight."""
    acc = sum(w * kinetic_factor(t, dh_over_r_k) for t, w in zip(temps_c, weights, strict=True))
    return mkt_of_sums(acc, sum(weights), dh_over_r_k)


def kinetic_factor(temp_c: float, dh_over_r_k: float = DH_OVER_R_K) -> float:
    """exp(-dH/(R*T)) of one temperature: what MKT averages."""
    return math.exp(-dh_over_r_k / (temp_c + KELVIN))


def mkt_of_sums(kinetic: float, weight: float, dh_over_r_k: float = DH_OVER_R_K) -> float | None:
    """MKT in Celsius from sum(w * exp(-dH/(R*T))) and sum(w); None when no weight."""
    if weight <= 0:
        return None
    return dh_over_r_k / -math.log(kinetic / weight) - KELVIN
