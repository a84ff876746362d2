"""What `dilemma defend eval` measured, as typed records: `SideResult` per model, `DefendEval` for the pair.

Each measure is a `Rate` (k of n, Wilson CI) or an `Estimate` (a mean or median with its bootstrap CI); they are
flattened into the `<name>`, `<name>_count`, `<name>_n`, `<name>_ci_low`, `<name>_ci_high` keys of
defend_eval.json (and of each side's cache, side.json) only by `as_json`, and read back by `from_json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dilemmakit.eval.stats import Estimate, Rate


@dataclass(frozen=True)
class SideResult:
    """One model's measures (`err.evaluate.measure_side`)."""

    trial_asr: Rate
    trial_turn1_act: Rate
    direct_asr: Rate
    strongreject_asr: Rate
    over_refusal: Rate
    engagement: Rate
    engagement_refused: int
    swap_consistency: Rate
    reference_agreement: Rate
    followthrough: Rate
    followthrough_outcomes: dict[str, int]  # what the follow-ups not carried out were: FOLLOWTHROUGH_OUTCOMES
    items: int
    errors: int  # conversations and prompts that ended in an error
    first_error: str | None

    # the rates, in the order the table shows them
    RATES: ClassVar[tuple[str, ...]] = (
        "trial_asr",
        "trial_turn1_act",
        "direct_asr",
        "strongreject_asr",
        "over_refusal",
        "engagement",
        "swap_consistency",
        "reference_agreement",
        "followthrough",
    )
    FOLLOWTHROUGH_OUTCOMES: ClassVar[tuple[str, ...]] = ("restated", "refused", "degenerate", "other")

    def rate(self, name: str) -> Rate:
        if name not in self.RATES:
            raise KeyError(name)
        return getattr(self, name)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in self.RATES:
            data.update(self.rate(name).fields(name))
            if name == "engagement":
                data["engagement_refused"] = self.engagement_refused
            elif name == "followthrough":
                data.update({f"followthrough_{k}": self.followthrough_outcomes[k] for k in self.FOLLOWTHROUGH_OUTCOMES})
        data.update(items=self.items, errors=self.errors, first_error=self.first_error)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideResult:
        return cls(
            **{name: Rate.from_fields(data, name) for name in cls.RATES},
            engagement_refused=data["engagement_refused"],
            followthrough_outcomes={k: data[f"followthrough_{k}"] for k in cls.FOLLOWTHROUGH_OUTCOMES},
            items=data["items"],
            errors=data["errors"],
            first_error=data["first_error"],
        )


@dataclass(frozen=True)
class DefendEval:
    """Both sides, and what only the pair shows: KL between them, the defense's gate, the latency it adds."""

    base: SideResult
    defended: SideResult
    benign_kl: Estimate
    gate_accuracy: dict[str, Rate] | None  # "all", "harmful", "benign"; None: the defense has no gate
    latency_ratio: Estimate
    ci: dict[str, Any]  # how the CIs were drawn (`eval.summary.CI`)
    config: dict[str, Any]

    GATE_KEYS: ClassVar[dict[str, str]] = {
        "all": "gate_accuracy",
        "harmful": "gate_accuracy_harmful",
        "benign": "gate_accuracy_benign",
    }

    @property
    def sides(self) -> dict[str, SideResult]:
        return {"base": self.base, "defended": self.defended}

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"base": self.base.as_json(), "defended": self.defended.as_json()}
        data.update(self.benign_kl.fields("benign_kl"))
        if self.gate_accuracy is None:
            data["gate_accuracy"] = None
        else:
            for part, name in self.GATE_KEYS.items():
                data.update(self.gate_accuracy[part].fields(name))
        data.update(self.latency_ratio.fields("latency_ratio"))
        data.update(ci=self.ci, config=self.config)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DefendEval:
        gate = None
        if data["gate_accuracy"] is not None:
            gate = {part: Rate.from_fields(data, name) for part, name in cls.GATE_KEYS.items()}
        return cls(
            base=SideResult.from_json(data["base"]),
            defended=SideResult.from_json(data["defended"]),
            benign_kl=Estimate.from_fields(data, "benign_kl"),
            gate_accuracy=gate,
            latency_ratio=Estimate.from_fields(data, "latency_ratio"),
            ci=data["ci"],
            config=data["config"],
        )
