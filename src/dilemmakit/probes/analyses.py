"""The probe's analyses as typed records, one per part, and the result that holds them.

Per-set numbers stay dicts keyed by set name (`harm`, `trial_h`, ...), lists indexed by layer. `as_json` is
the only place a record becomes probe.json's section; its keys and their order are that file's format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PerSet = dict[str, list[float]]  # set name -> one value per layer

SECTIONS = {
    "probe": "probe",
    "direction": "refusal_direction",
    "lens": "logit_lens",
    "transfer": "transfer",
    "trajectories": "trajectories",
}  # Analyses' field -> its section in probe.json

EXCESS_STATISTIC = "harm-specific excess = (HDR neutral-H - HDR TRIAL-H) - (HDR neutral-B - HDR TRIAL-B)"


@dataclass
class WrapperSeparability:
    """A probe trained inside one wrapper on its harmful and benign prompts (cross-fitted), per layer."""

    accuracy: list[float]
    auroc: list[float]

    def as_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "auroc": self.auroc}


@dataclass
class ControlAnalysis:
    """The dissociation gap against its neutral-wrapper control: the harm-specific excess and its CI."""

    gap_neutral: list[float]
    excess: list[float]
    excess_low: list[float]
    excess_high: list[float]
    excess_harmful: list[float]
    excess_benign: list[float]
    refit_low: list[float]
    refit_high: list[float]
    ci_method: str
    refits: int
    paired: bool
    n: int
    exceeds_at: list[int]
    wrapper: str = "neutral"
    ci_level: float = 0.95

    def as_json(self) -> dict[str, Any]:
        return {
            "wrapper": self.wrapper,
            "gap_neutral": self.gap_neutral,
            "statistic": EXCESS_STATISTIC,
            "excess": self.excess,
            "excess_ci": [self.excess_low, self.excess_high],
            "excess_harmful": self.excess_harmful,
            "excess_benign": self.excess_benign,
            "excess_refit_range": [self.refit_low, self.refit_high],
            "ci_level": self.ci_level,
            "ci_method": self.ci_method,
            "refits": self.refits,
            "paired": self.paired,
            "n": self.n,
            "exceeds_at": self.exceeds_at,
        }


@dataclass
class ProbeAnalysis:
    """Part `probe`: per-layer harm probes on the plain prompts, their detection rate (HDR) on every set, the
    dissociation gap (HDR D_harm - D_TRIAL-H) and how the wrappers are read."""

    hdr: PerSet
    n: dict[str, int]
    accuracy: list[float]
    auroc: list[float]
    gap: list[float]
    peak_layer: int
    peak_gap: float
    plain_probe_auroc: PerSet  # wrapper -> the plain probe's AUROC on its harmful vs benign prompts
    within_wrapper: dict[str, WrapperSeparability]
    paired: bool
    folds: int
    l2: float
    threshold: float
    control: ControlAnalysis | None = None

    @property
    def trial_separability(self) -> list[float]:
        return self.within_wrapper["trial"].accuracy

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hdr": self.hdr,
            "n": self.n,
            "accuracy": self.accuracy,
            "auroc": self.auroc,
            "gap": self.gap,
            "peak_layer": self.peak_layer,
            "peak_gap": self.peak_gap,
            "trial_separability": self.trial_separability,
            "plain_probe_auroc": self.plain_probe_auroc,
            "within_wrapper": {w: s.as_json() for w, s in self.within_wrapper.items()},
            "paired": self.paired,
            "folds": self.folds,
            "l2": self.l2,
            "threshold": self.threshold,
        }
        if self.control is not None:
            out["control"] = self.control.as_json()
        return out


@dataclass
class DirectionAnalysis:
    """Part `direction`: each set's projection on the per-layer refusal direction (difference of means)."""

    rho_mean: PerSet
    rho_std: PerSet
    rho_relative: PerSet  # 0 = the benign mean, 1 = the harmful mean
    mean_difference_norm: list[float]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in order, are the section


@dataclass
class LensAnalysis:
    """Part `lens`: the refusal tokens' probability decoded from each layer (logit lens)."""

    tokens: list[str]
    p_refuse: PerSet
    p_refuse_median: PerSet

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in order, are the section


@dataclass
class TransferAnalysis:
    """Part `transfer`: the probe trained at layer i evaluated at layer j."""

    accuracy: list[list[float]]
    hdr_trial_h: list[list[float]]

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": "train layer i",
            "columns": "eval layer j",
            "accuracy": self.accuracy,
            "hdr_trial_h": self.hdr_trial_h,
        }


@dataclass
class TrajectoryAnalysis:
    """Part `trajectory`: stored multi-turn conversations projected on the refusal direction, turn by turn."""

    layers: list[int]
    conversations: list[dict[str, Any]]
    mean_by_turn: dict[str, list[float]]
    successful_only: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in order, are the section


@dataclass
class Analyses:
    """What one probe run computed; a part not run is None. Field order is probe.json's section order."""

    probe: ProbeAnalysis | None = None
    direction: DirectionAnalysis | None = None
    lens: LensAnalysis | None = None
    transfer: TransferAnalysis | None = None
    trajectories: TrajectoryAnalysis | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, section in SECTIONS.items():
            record = getattr(self, name)
            if record is not None:
                out[section] = record.as_json()
        return out


@dataclass
class ProbeResult:
    """One `dilemma probe` run: what was probed, its settings, its analyses and the files written."""

    model: str
    weights: dict[str, Any] | None  # describe_weights(model); None where not described
    n_layers: int
    pooling: str
    sizes: dict[str, int]
    analyses: Analyses = field(default_factory=Analyses)
    hidden_size: int = 0
    created: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    out: str = ""
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def layers(self) -> list[int]:
        return list(range(self.n_layers))

    def as_json(self) -> dict[str, Any]:
        """probe.json."""
        return {
            "model": self.model,
            **({"weights": self.weights} if self.weights is not None else {}),
            "created": self.created,
            "n_layers": self.n_layers,
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "pooling": self.pooling,
            "sizes": self.sizes,
            "settings": self.settings,
            "out": self.out,
            **self.analyses.as_json(),
            "files": self.files,
            "seconds": self.seconds,
        }
