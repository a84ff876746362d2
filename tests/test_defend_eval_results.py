"""`defend eval`'s typed result flattens to the same JSON layout as before (defend_eval.json, each side's
side.json cache, `--json`) and reads back from it unchanged."""

import json

import pytest

from dilemmakit.err.results import DefendEval, SideResult
from dilemmakit.errors import FailedCalls
from dilemmakit.eval.stats import Estimate, Rate

RATE_KEYS = [
    "trial_asr",
    "trial_turn1_act",
    "direct_asr",
    "strongreject_asr",
    "over_refusal",
    "engagement",
    "swap_consistency",
    "reference_agreement",
    "followthrough",
]


def side(errors: int = 0) -> SideResult:
    rates = {name: Rate.of(i, 10 + i) for i, name in enumerate(RATE_KEYS)}
    outcomes = {"restated": 1, "refused": 2, "degenerate": 0, "other": 3}
    return SideResult(
        **rates,
        engagement_refused=4,
        followthrough_outcomes=outcomes,
        items=50,
        errors=errors,
        first_error="HTTP 500" if errors else None,
    )


def old_layout(s: SideResult) -> dict:
    """The layout measure_side wrote before the typed result (key order included)."""
    data: dict = {}
    for name in RATE_KEYS[:6]:
        data.update(getattr(s, name).fields(name))
    data["engagement_refused"] = s.engagement_refused
    data.update(s.swap_consistency.fields("swap_consistency"))
    data.update(s.reference_agreement.fields("reference_agreement"))
    data.update(s.followthrough.fields("followthrough"))
    data.update(
        {f"followthrough_{k}": s.followthrough_outcomes[k] for k in ("restated", "refused", "degenerate", "other")}
    )
    return {**data, "items": s.items, "errors": s.errors, "first_error": s.first_error}


def result(gate: bool = True, errors: int = 0) -> DefendEval:
    gates = {"all": Rate.of(18, 20), "harmful": Rate.of(9, 10), "benign": Rate.of(9, 10)} if gate else None
    return DefendEval(
        side(),
        side(errors),
        Estimate(0.0123, 8, 0.01, 0.02),
        gates,
        Estimate(1.1, 4, 1.0, 1.2),
        {"level": 0.95, "method": "bootstrap", "resamples": 1000, "seed": 0},
        {"seed": 0, "base": "embedded-aligned", "defended": "embedded-err"},
    )


def test_a_side_flattens_as_before_and_reads_back():
    s = side(errors=2)
    assert json.dumps(s.as_json()) == json.dumps(old_layout(s))
    assert SideResult.from_json(json.loads(json.dumps(s.as_json()))) == s


@pytest.mark.parametrize("gate", [True, False])
def test_the_pair_flattens_as_before_and_reads_back(gate):
    r = result(gate)
    data = r.as_json()
    expected = {"base": old_layout(r.base), "defended": old_layout(r.defended)}
    expected.update(r.benign_kl.fields("benign_kl"))
    if gate:
        assert r.gate_accuracy is not None
        for part, name in (
            ("all", "gate_accuracy"),
            ("harmful", "gate_accuracy_harmful"),
            ("benign", "gate_accuracy_benign"),
        ):
            expected.update(r.gate_accuracy[part].fields(name))
    else:
        expected["gate_accuracy"] = None
    expected.update(r.latency_ratio.fields("latency_ratio"))
    expected.update(ci=r.ci, config=r.config)
    assert json.dumps(data) == json.dumps(expected)
    assert DefendEval.from_json(json.loads(json.dumps(data))) == r


def test_the_json_output_and_the_exit_on_errors():
    from dilemmakit.cli.defend import _fail_on_errors, _public

    r = result()
    public = _public(r)
    assert list(public) == ["base", "defended", "engagement_ci", "benign_kl", "gate_accuracy", "latency_ratio", "ci"]
    assert public["base"]["trial_asr"] == r.base.trial_asr.value and public["gate_accuracy"] == 0.9
    assert public["engagement_ci"]["base"] == {
        "engagement_n": r.base.engagement.n,
        "engagement_ci_low": r.base.engagement.ci_low,
        "engagement_ci_high": r.base.engagement.ci_high,
    }
    assert public["ci"]["base"]["followthrough"] == {
        "count": 8,
        "n": 18,
        "ci_low": r.base.followthrough.ci_low,
        "ci_high": r.base.followthrough.ci_high,
    }
    assert public["ci"]["settings"]["eval_seed"] == 0
    _fail_on_errors(r)
    with pytest.raises(FailedCalls):
        _fail_on_errors(result(errors=3))
