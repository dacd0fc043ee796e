"""Will more data help? A learning curve fitted to the baseline at a few training sizes.

The baseline is trained on 25/50/75/100 % of each fold's training patients; its test
score ``s`` at ``n`` training images is fitted by a saturating power law

    s(n) = a - b * n ** (-c)          a <= 1, b >= 0, 0 < c <= 2

(the usual form of learning curves: Hestness et al. 2017, Cho et al. 2015 for medical
images). The gain that *perfect* extra data of the same kind would give at ``n_extra``
extra images is ``s(n + n_extra) - s(n)``: an upper bound for any generator, since a
synthetic image is at best worth one real image. Its uncertainty comes from refitting
on bootstrap resamples of the folds (each fold's points move together: the sizes of a
fold share its test patients), so the interval says how far the curve can be trusted
beyond the sizes it was fitted on. numpy/scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Curve:
    a: float
    b: float
    c: float

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.a - self.b * np.power(np.asarray(n, dtype=np.float64), -self.c)


@dataclass
class CurveFit:
    curve: Curve
    boot: list[Curve] = field(default_factory=list)  # refits on resampled folds

    def gain(self, n: float, n_extra: float, level: float = 0.95) -> tuple[float, float, float]:
        """(estimate, low, high) of ``s(n + n_extra) - s(n)``."""
        est = float(self.curve(n + n_extra) - self.curve(n))
        if not self.boot:
            return est, math.nan, math.nan
        g = np.array([c(n + n_extra) - c(n) for c in self.boot], dtype=np.float64)
        q = (1 - level) / 2
        return est, float(np.quantile(g, q)), float(np.quantile(g, 1 - q))


def _fit_one(n: np.ndarray, s: np.ndarray) -> Curve:
    """Least squares over a grid of exponents ``c`` (for a fixed ``c`` the model is linear
    in ``a`` and ``b``): robust with 4 sizes, no starting values, always an answer."""
    best: tuple[float, Curve] | None = None
    for c in np.linspace(0.05, 2.0, 79):
        x = np.power(n, -c)
        design = np.stack([np.ones_like(x), -x], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, s, rcond=None)
        b = max(float(b), 0.0)  # more data never hurts on average
        a = min(float(np.mean(s + b * x)), 1.0) if b > 0 else min(float(np.mean(s)), 1.0)
        sse = float(np.sum((a - b * x - s) ** 2))
        if best is None or sse < best[0] - 1e-15:
            best = (sse, Curve(a, b, float(c)))
    assert best is not None
    return best[1]


def fit_curve(
    sizes: Sequence[float],
    scores: Sequence[float],
    groups: Sequence[int] | None = None,
    *,
    rng: np.random.Generator | None = None,
    n_boot: int = 500,
) -> CurveFit:
    """Fit ``s(n)`` to points (``sizes[i]``, ``scores[i]``); ``groups[i]`` is the fold of
    point i (resampled together for the interval; no groups: no interval)."""
    n = np.asarray(sizes, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if n.shape != s.shape or n.size < 3 or np.any(n <= 0) or not np.all(np.isfinite(s)):
        raise ValueError("a learning curve needs >= 3 points with sizes > 0 and finite scores")
    if len(set(n.tolist())) < 2:
        raise ValueError("a learning curve needs at least two different sizes")
    fit = CurveFit(_fit_one(n, s))
    if groups is None or rng is None or n_boot <= 0:
        return fit
    g = np.asarray(groups)
    ids = np.unique(g)
    for _ in range(n_boot):
        pick = rng.choice(ids, size=ids.size, replace=True)
        idx = np.concatenate([np.flatnonzero(g == k) for k in pick])
        if len(set(n[idx].tolist())) >= 2:
            fit.boot.append(_fit_one(n[idx], s[idx]))
    return fit
