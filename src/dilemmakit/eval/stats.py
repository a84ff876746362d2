"""Small statistics: confidence intervals (Wilson for rates, bootstrap for means) and agreement measures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def bootstrap_ci(
    outcomes, *, level: float = 0.95, resamples: int = 2000, seed: int = 0, statistic=np.mean
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (or of `statistic`, e.g. np.median) of 0/1 (or real) outcomes;
    (0, 0) for no data."""
    x = np.asarray(list(outcomes), dtype=float)
    if x.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    replicates = statistic(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)
    return percentile_interval(replicates, level)


def wilson_interval(count: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate; (0, 0) for no data. Unlike a bootstrap it does not collapse to a
    point at 0/n or n/n: 0 successes out of 8 is not evidence of a rate of exactly 0 (the interval is [0, 32%])."""
    if n == 0:
        return 0.0, 0.0
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = count / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central `level` interval of bootstrap replicates (the percentile method)."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(values, dtype=float), [tail, 1 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Rate:
    """`count` of `n` items, with the 95% Wilson CI of the rate (as JSON: `Rate.fields`)."""

    count: int
    n: int
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, count: int, n: int, level: float = 0.95) -> Rate:
        low, high = wilson_interval(count, n, level)
        return cls(count, n, round(low, 4), round(high, 4))

    @classmethod
    def from_fields(cls, data: dict, name: str) -> Rate:
        return cls(data[f"{name}_count"], data[f"{name}_n"], data[f"{name}_ci_low"], data[f"{name}_ci_high"])

    @property
    def value(self) -> float:
        return round(self.count / self.n, 4) if self.n else 0.0

    def fields(self, name: str) -> dict:
        return {
            name: self.value,
            f"{name}_count": self.count,
            f"{name}_n": self.n,
            f"{name}_ci_low": self.ci_low,
            f"{name}_ci_high": self.ci_high,
        }

    def cell(self) -> str:
        """`k/n = p% [lo, hi]`."""
        return f"{self.count}/{self.n} = {100 * self.value:.1f}% [{100 * self.ci_low:.1f}, {100 * self.ci_high:.1f}]"


def _tidy(x: float) -> float:
    """Six decimals, and no float noise such as -1e-9 printed as -0.000."""
    return round(x, 6) + 0.0


@dataclass(frozen=True)
class Estimate:
    """A mean (or another `statistic`) over `n` values, with its 95% percentile-bootstrap CI."""

    value: float
    n: int
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, values: list[float], statistic=np.mean, **settings) -> Estimate:
        low, high = bootstrap_ci(values, statistic=statistic, **settings)
        value = float(statistic(values)) if values else 0.0
        return cls(_tidy(value), len(values), _tidy(low), _tidy(high))

    @classmethod
    def from_fields(cls, data: dict, name: str) -> Estimate:
        return cls(data[name], data[f"{name}_n"], data[f"{name}_ci_low"], data[f"{name}_ci_high"])

    def fields(self, name: str) -> dict:
        return {name: self.value, f"{name}_n": self.n, f"{name}_ci_low": self.ci_low, f"{name}_ci_high": self.ci_high}

    def cell(self, digits: int = 3) -> str:
        """`v [lo, hi], n=N`."""
        return f"{self.value:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}], n={self.n}"


@dataclass(frozen=True)
class Agreement:
    """Judge vs human on a binary label ('complied' is the positive class)."""

    n: int
    tp: int  # both say complied
    fp: int  # judge complied, human refused
    fn: int  # judge refused, human complied
    tn: int

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def kappa(self) -> float:
        """Cohen's kappa; 0 when chance agreement is total (one label everywhere)."""
        if not self.n:
            return 0.0
        p_o = self.accuracy
        judge_pos, human_pos = (self.tp + self.fp) / self.n, (self.tp + self.fn) / self.n
        p_e = judge_pos * human_pos + (1 - judge_pos) * (1 - human_pos)
        return 0.0 if p_e >= 1 else (p_o - p_e) / (1 - p_e)

    def as_dict(self) -> dict:
        return {
            "accuracy": round(self.accuracy, 4),
            "kappa": round(self.kappa, 4),
            "n": self.n,
            "precision_complied": round(self.precision, 4),
            "recall_complied": round(self.recall, 4),
            "confusion": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
        }


def agreement(predicted: list[bool], human: list[bool]) -> Agreement:
    pairs = [(bool(p), bool(h)) for p, h in zip(predicted, human, strict=True)]
    return Agreement(
        n=len(pairs),
        tp=sum(p and h for p, h in pairs),
        fp=sum(p and not h for p, h in pairs),
        fn=sum(h and not p for p, h in pairs),
        tn=sum(not p and not h for p, h in pairs),
    )
