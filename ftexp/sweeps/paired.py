"""The difference between two scenarios in one metric, paired by seed, with a Student-t interval.

Pairing by seed compares like with like: the seed fixes the data order and the initialization of the head, which
move a metric about as much as the schedules do on a small task, and that shared part cancels in a seed's
difference. The interval is the one for the mean of the paired differences, ``mean ± t(1 - (1 - confidence) / 2,
n - 1) · sd / sqrt(n)`` (sd: the sample standard deviation of the n differences). It assumes the differences are
roughly normal, which a handful of seeds can neither confirm nor refute; a bootstrap interval would need more seeds
than sweeps usually have to mean anything (with 3 pairs it can take only 10 distinct values).

The t quantile is computed here rather than taken from scipy: scipy is no dependency of ftexp (nothing it requires
pulls it in), and one quantile is not worth a 40 MB package. For the integer degrees of freedom a paired interval
has, the t distribution function has a finite closed form (Abramowitz & Stegun 26.7.3-4), inverted by bisection,
so the quantile is exact to float precision for every n, not a table with an approximation beyond it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
INCLUDES_ZERO = "interval includes 0: no evidence of a difference"


@dataclass(frozen=True)
class PairedDifference:
    """A scenario minus its baseline, seed by seed: ``differences[i]`` is seed ``seeds[i]``'s. ``low``/``high`` are
    ``None`` with fewer than 2 pairs (one difference has no spread to build an interval from)."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float | None
    low: float | None
    high: float | None
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def no_spread(self) -> bool:
        """Every seed's difference the same (accuracies move in steps of one example): the interval collapses to a
        point, which says nothing about how sure the difference is, so it is not read as evidence either way."""
        return self.n >= 2 and len(set(self.differences)) == 1

    @property
    def includes_zero(self) -> bool | None:
        """Whether the interval includes 0 (``None`` without an interval, or without spread to build one from)."""
        if self.low is None or self.high is None or self.no_spread:
            return None
        return self.low <= 0 <= self.high

    @property
    def verdict(self) -> str:
        """What the numbers allow one to say, in words."""
        if self.n == 0:
            return "no seed completed in both: nothing to pair"
        if self.n == 1:
            return "1 pair: no interval (it needs 2 or more)"
        if self.no_spread:
            return f"the same difference for all {self.n} seeds: no spread, so no interval to judge it by"
        if self.includes_zero:
            return INCLUDES_ZERO
        return f"{'higher' if self.mean > 0 else 'lower'} than the baseline (interval excludes 0)"


def paired_difference(
    values: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE
) -> PairedDifference:
    """``values`` minus ``baseline`` over the seeds both have (a seed of only one side is left out: it has nothing to
    pair with), with the mean and the Student-t interval of the differences.

    >>> d = paired_difference({1: 0.7, 2: 0.8, 3: 0.9}, {1: 0.6, 2: 0.6, 3: 0.6})
    >>> round(d.mean, 6), round(d.low, 4), round(d.high, 4), d.n
    (0.2, -0.0484, 0.4484, 3)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    seeds = tuple(sorted(set(values) & set(baseline)))
    differences = tuple(values[seed] - baseline[seed] for seed in seeds)
    if not differences:
        return PairedDifference(seeds, differences, None, None, None, confidence)
    mean, n = statistics.fmean(differences), len(differences)
    if n < 2:
        return PairedDifference(seeds, differences, mean, None, None, confidence)
    half_width = t_critical(confidence, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return PairedDifference(seeds, differences, mean, mean - half_width, mean + half_width, confidence)


def t_critical(confidence: float, df: int) -> float:
    """The t such that a Student-t variable with ``df`` degrees of freedom lies within ±t with probability
    ``confidence``: ``t_critical(0.95, 2)`` = 4.3027, the 97.5 % quantile.

    Bisection on :func:`t_within`, which grows with t: 200 halvings reach float precision from any bracket.
    """
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    low, high = 0.0, 1.0
    while t_within(high, df) < confidence:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_within(middle, df) < confidence else (low, middle)
    return high


def t_within(t: float, df: int) -> float:
    """P(|T| <= t) for T Student-t with integer ``df`` (Abramowitz & Stegun 26.7.3 for odd, 26.7.4 for even df):
    with theta = atan(t / sqrt(df)) and c = cos(theta)^2,

    - even df: sin(theta) * (1 + 1/2 c + 1·3/(2·4) c^2 + ... + 1·3···(df-3)/(2·4···(df-2)) c^((df-2)/2))
    - odd df: 2/pi * (theta + sin(theta) cos(theta) * (1 + 2/3 c + ... + 2·4···(df-3)/(3·5···(df-2)) c^((df-3)/2))),
      just 2 theta / pi for df = 1.
    """
    theta = math.atan(abs(t) / math.sqrt(df))
    c = math.cos(theta) ** 2
    term = total = 1.0
    for k in range(2 if df % 2 == 0 else 3, df, 2):  # each term is the one before times (k - 1) / k * c
        term *= (k - 1) / k * c
        total += term
    if df % 2 == 0:
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
