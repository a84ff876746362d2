"""Ranges live on the config models' fields (and serve's options): an out-of-range value ends in one line
naming its flag and exit 2, before anything is loaded or stored; help lists come from the registries."""

from __future__ import annotations

import pytest

from tests.cli_inprocess import run_inprocess

CASES = [
    (("overrefusal", "--target", "embedded", "--limit", "0"), "--limit"),
    (("utility", "--target", "embedded", "--max-tokens", "0"), "--max-tokens"),
    (("engagement", "--target", "embedded", "--concurrency", "0"), "--concurrency"),
    (("followthrough", "--target", "embedded", "--followup-max-tokens", "0"), "--followup-max-tokens"),
    (("attack", "--target", "embedded", "--limit", "0"), "--limit"),
    (("probe", "--model", "embedded", "--folds", "1"), "--folds"),
    (("probe", "--model", "embedded", "--refits", "0"), "--refits"),
    (("probe", "--model", "embedded", "--batch-size", "0"), "--batch-size"),
    (("probe", "--model", "embedded", "--limit", "1"), "--limit"),
    (("defend", "data", "--plain", "-1"), "--plain"),
    (("defend", "data", "--plain", "0", "--trial", "0", "--multi", "0"), "all zero"),
    (("defend", "train", "--model", "embedded", "--data", "D", "--lr", "0"), "--lr"),
    (("defend", "train", "--model", "embedded", "--data", "D", "--max-seq-len", "16"), "--max-seq-len"),
    (("defend", "train", "--model", "embedded", "--data", "D", "--grad-accum", "0"), "--grad-accum"),
    (("defend", "eval", "--base", "embedded", "--defense", "err", "--max-rounds", "0"), "--max-rounds"),
    (("defend", "eval", "--base", "embedded", "--defense", "err", "--xstest-limit", "0"), "--xstest-limit"),
    (("serve", "--model", "embedded", "--port", "0"), "--port"),
    (("serve", "--model", "embedded", "--port", "70000"), "--port"),
    (("serve", "--model", "embedded", "--max-body-mb", "0"), "--max-body-mb"),
    (("serve", "--model", "embedded", "--max-body-mb", "abc"), "--max-body-mb"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_an_out_of_range_value_is_one_line_naming_its_flag(capsys, tmp_path, args, needle):
    where = tmp_path / "out"
    place = {
        "overrefusal": ("--run-dir",),
        "utility": ("--run-dir",),
        "engagement": ("--run-dir",),
        "followthrough": ("--run-dir",),
        "attack": ("--run-dir",),
        "probe": ("--out",),
        "data": ("--out",),
        "train": ("--out",),
        "eval": ("--run-dir",),
        "serve": (),
    }[args[1] if args[0] == "defend" else args[0]]
    code, _, err = run_inprocess(capsys, *args, *(x for flag in place for x in (flag, where)))
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    assert not where.exists()  # refused before anything was created


def test_behavior_set_lists_in_help_come_from_the_registry():
    from dilemmakit.behaviors import BUILTIN_SETS, behaviors_help
    from dilemmakit.campaign import CampaignConfig
    from dilemmakit.probes import ProbeConfig

    assert behaviors_help() == "|".join(BUILTIN_SETS)
    assert CampaignConfig.model_fields["behaviors"].description.startswith(behaviors_help())
    harmful = ProbeConfig.model_fields["harmful"].description
    assert all(name in harmful for name in BUILTIN_SETS)
