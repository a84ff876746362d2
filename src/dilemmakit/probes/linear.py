"""The maths of the probe analysis, on plain arrays (testable on synthetic activations).

- logistic-regression probe: scikit-learn's `LogisticRegression` (L2, lbfgs, class-balanced) on
  standardised features;
- cross-fitting: k folds over the request index (scikit-learn's `KFold`), so every prompt (and each of
  its wrapped twins) is scored by a probe that never saw that request (the paper's held-out,
  matched-layer evaluation);
- HDR(l, D) = fraction of D the layer-l probe calls harmful; gap(l) = HDR(l, harm) - HDR(l, trial_h);
- AUROC (`roc_auc_score`) of any probe score between a harmful and a benign set;
- the gap's harm-specific excess over a control wrapper: excess(l) = [HDR(l, control_h) - HDR(l, trial_h)]
  - [HDR(l, control_b) - HDR(l, trial_b)], i.e. gap(l) - gap_control(l) net of the benign twins' shift,
  with a CI over probe refits (fold splits) and a request bootstrap;
- refusal direction r = (mu_harm - mu_benign) / ||mu_harm - mu_benign||, projection rho = h . r.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

THRESHOLD = 0.5


@dataclass
class LogisticProbe:
    mean: np.ndarray  # [d] feature means of the training data
    scale: np.ndarray  # [d] feature standard deviations (floored)
    weight: np.ndarray  # [d] in standardised units
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weight + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -60, 60)))

    def harmful(self, x: np.ndarray) -> np.ndarray:
        return self.proba(x) > THRESHOLD


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, max_iter: int = 1000) -> LogisticProbe:
    """L2-regularised logistic regression (scikit-learn, lbfgs) on standardised features; both classes weigh the same.

    The loss is mean_class-balanced BCE + l2/2 |w|^2, i.e. scikit-learn's C = 1 / (l2 n) with
    `class_weight="balanced"`; the intercept is not penalised.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError("fit_logistic needs both classes (labels 0 and 1)")
    mean = x.mean(0)
    scale = np.maximum(x.std(0), 1e-6)
    model = LogisticRegression(C=1.0 / (l2 * len(x)), class_weight="balanced", solver="lbfgs", max_iter=max_iter)
    # Small problems: one BLAS thread is faster than several, and far faster on oversubscribed cores.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit((x - mean) / scale, y.astype(int))
    return LogisticProbe(mean, scale, model.coef_[0].copy(), float(model.intercept_[0]))


def assign_folds(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Fold id per item (scikit-learn `KFold`, shuffled by `seed`): folds differ in size by at most one."""
    from sklearn.model_selection import KFold

    k = max(2, min(k, n))
    folds = np.empty(n, dtype=np.int64)
    for fold, (_, held) in enumerate(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))):
        folds[held] = fold
    return folds


def auroc(positive: ArrayLike, negative: ArrayLike) -> float:
    """Area under the ROC curve of scores: P(a positive outranks a negative); 0.5 = chance."""
    from sklearn.metrics import roc_auc_score

    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return float(roc_auc_score(labels, np.concatenate([pos, neg])))


@dataclass
class LayerResult:
    scores: dict[str, np.ndarray]  # set -> out-of-fold P(harmful) per prompt
    probes: list[LogisticProbe]  # one per fold

    def hdr(self, name: str) -> float:
        return float(np.mean(self.scores[name] > THRESHOLD))

    def accuracy(self) -> float:
        """Balanced held-out accuracy on harm vs benign."""
        return 0.5 * (self.hdr("harm") + 1.0 - self.hdr("benign"))

    def auroc(self, harmful: str = "harm", benign: str = "benign") -> float:
        return auroc(self.scores[harmful], self.scores[benign])


def crossfit_layer(features: dict[str, np.ndarray], folds: dict[str, np.ndarray], *, l2: float = 1e-2) -> LayerResult:
    """Train on harm (1) vs benign (0) of all folds but one, score every set's prompts of that fold.

    `folds[name]` gives each prompt's fold; the wrapped sets carry the folds of the request they wrap.
    """
    k = int(max(f.max() for f in folds.values())) + 1
    scores = {name: np.full(len(x), np.nan) for name, x in features.items()}
    probes = []
    for fold in range(k):
        train_h = features["harm"][folds["harm"] != fold]
        train_b = features["benign"][folds["benign"] != fold]
        probe = fit_logistic(
            np.concatenate([train_h, train_b]), np.concatenate([np.ones(len(train_h)), np.zeros(len(train_b))]), l2=l2
        )
        probes.append(probe)
        for name, x in features.items():
            held = folds[name] == fold
            if held.any():
                scores[name][held] = probe.proba(x[held])
    return LayerResult(scores, probes)


def crossfit_scores(probes: list[LogisticProbe], x: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold P(harmful) of `x` under per-fold probes trained elsewhere (e.g. at another layer)."""
    out = np.full(len(x), np.nan)
    for fold, probe in enumerate(probes):
        held = folds == fold
        if held.any():
            out[held] = probe.proba(x[held])
    return out


def dissociation_gap(hdr_harm: ArrayLike, hdr_trial_h: ArrayLike) -> tuple[np.ndarray, int, float]:
    """(gap per layer, peak layer, peak value) with gap(l) = HDR(l, harm) - HDR(l, trial_h)."""
    gap = np.asarray(hdr_harm, dtype=float) - np.asarray(hdr_trial_h, dtype=float)
    peak = int(np.argmax(gap))
    return gap, peak, float(gap[peak])


@dataclass
class Excess:
    """The dissociation gap's harm-specific excess over a control wrapper, per layer, with a 95% CI.

    excess = (HDR(control_h) - HDR(trial_h)) - (HDR(control_b) - HDR(trial_b)): the gap's excess over its
    control (harmful side) net of the same difference on the benign twins, so a format difference between
    the wrappers that moves harmful and benign prompts alike cancels out.
    """

    value: np.ndarray  # [L] harm-specific excess, mean over the probe refits
    low: np.ndarray  # [L] 95% CI
    high: np.ndarray  # [L]
    harmful: np.ndarray  # [L] HDR(control_h) - HDR(trial_h) = gap - gap_control (mean over refits)
    benign: np.ndarray  # [L] HDR(control_b) - HDR(trial_b), the benign twins' side
    refit_low: np.ndarray  # [L] the excess's smallest value over the refits alone
    refit_high: np.ndarray  # [L] its largest
    n: int  # harmful requests (pairs when paired)
    refits: int

    def exceeds(self) -> list[int]:
        """Layers whose CI lies wholly above zero."""
        return [int(i) for i in np.flatnonzero(self.low > 0)]


def harm_specific_excess(
    trial_h: np.ndarray,
    control_h: np.ndarray,
    trial_b: np.ndarray,
    control_b: np.ndarray,
    *,
    paired: bool,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Excess:
    """Harm-specific excess from [R, n, L] 0/1 flags: R refits of the probes, n requests (row i of a wrapped set
    wraps plain request i), L layers.

    The CI pools a request bootstrap over the R refits (resamples / R draws each): its spread is the
    request-sampling variance plus the variance between refits. The refit part matters because a fold
    probe tends to put all of a fold's wrapped prompts on one side of its threshold, so with the probes
    held fixed the wrapped sets' HDRs look far more certain than they are. With `paired`, a draw keeps
    each harmful request with its benign twin.
    """
    flags = [np.asarray(f, dtype=float) for f in (trial_h, control_h, trial_b, control_b)]
    if any(f.ndim != 3 for f in flags):
        raise ValueError("flags must be [refits, requests, layers]")
    side_h = flags[1] - flags[0]  # [R, n_h, L]
    side_b = flags[3] - flags[2]  # [R, n_b, L]
    if paired and side_h.shape != side_b.shape:
        raise ValueError("paired flags need as many benign twins as harmful requests")
    refits, n_h, _ = side_h.shape
    n_b = side_b.shape[1]
    per_refit = side_h.mean(1) - side_b.mean(1)  # [R, L]
    rng = np.random.default_rng(seed)
    draws = max(1, resamples // refits)
    means = []
    for r in range(refits):
        for _ in range(draws):
            idx_h = rng.integers(0, n_h, size=n_h)
            idx_b = idx_h if paired else rng.integers(0, n_b, size=n_b)
            means.append(side_h[r, idx_h].mean(0) - side_b[r, idx_b].mean(0))
    tail = (1 - level) / 2
    low, high = np.quantile(np.stack(means), [tail, 1 - tail], axis=0)
    return Excess(
        value=per_refit.mean(0),
        low=low,
        high=high,
        harmful=side_h.mean((0, 1)),
        benign=side_b.mean((0, 1)),
        refit_low=per_refit.min(0),
        refit_high=per_refit.max(0),
        n=n_h,
        refits=refits,
    )


def refusal_direction(harm: np.ndarray, benign: np.ndarray) -> np.ndarray:
    """Unit difference-of-means direction (Arditi et al.); zeros when the means coincide."""
    diff = np.asarray(harm, dtype=np.float64).mean(0) - np.asarray(benign, dtype=np.float64).mean(0)
    norm = np.linalg.norm(diff)
    return diff / norm if norm > 0 else diff


def projection(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ direction


def relative_projection(rho: np.ndarray, rho_harm_mean: float, rho_benign_mean: float) -> np.ndarray:
    """rho rescaled so the benign mean is 0 and the harm mean is 1 (comparable across layers)."""
    span = rho_harm_mean - rho_benign_mean
    return (rho - rho_benign_mean) / span if abs(span) > 1e-12 else np.zeros_like(rho)
