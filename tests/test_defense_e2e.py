"""A short ERR run on the real embedded model through the CLI: data -> train -> load -> eval.

Marked slow: it loads SmolLM2-135M a few times and trains for a handful of steps (tiny sizes)."""

from __future__ import annotations

import json

import pytest

from dilemmakit.defense.config import CONFIG_NAME, WEIGHTS_NAME, DefenseConfig
from tests.helpers import assert_clean_error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.helpers import run_cli

    root = tmp_path_factory.mktemp("err")
    run_cli(
        "defend",
        "data",
        "--out",
        root / "data",
        "--model",
        "embedded",
        "--plain",
        "2",
        "--trial",
        "1",
        "--multi",
        "1",
        "--max-tokens",
        "6",
        check=True,
        timeout=600,
    )
    run_cli(
        "defend",
        "train",
        "--model",
        "embedded",
        "--data",
        root / "data",
        "--out",
        root / "def",
        "--gate-epochs",
        "3",
        "--max-seq-len",
        "96",
        "--batch",
        "4",
        "--start-layer",
        "27",
        "--rank",
        "2",
        check=True,
        timeout=600,
    )
    return root


def test_data_is_balanced_and_masked(trained):
    rows = [json.loads(x) for d in ("train", "val") for x in (trained / "data" / f"{d}.jsonl").read_text().splitlines()]
    labels = [r["harm_label"] for r in rows]
    assert labels.count(1) == labels.count(0)
    assert {r["kind"] for r in rows} >= {"plain", "trial"}
    assert json.loads((trained / "data" / "meta.json").read_text())["config"]["seed"] == 42


def test_train_writes_safetensors_config_and_report(trained):
    d = trained / "def"
    assert (d / WEIGHTS_NAME).exists() and (d / CONFIG_NAME).exists()
    cfg = DefenseConfig.load(d)
    assert cfg.detection_layer == 11  # scaled from the paper's 12 of 32 layers to 30
    assert cfg.start_layer == 27
    report = json.loads((d / "train_report.json").read_text())
    assert "stage1" in report and "stage2" in report
    assert not (d / "checkpoint.pt").exists()
    assert (d / WEIGHTS_NAME).stat().st_size < 5_000_000


def test_eval_json_has_the_promised_shape(trained, cli):
    proc = cli(
        "defend",
        "eval",
        "--base",
        "embedded",
        "--defense",
        trained / "def",
        "--run-dir",
        trained / "eval",
        "--limit",
        "1",
        "--strongreject-limit",
        "1",
        "--xstest-limit",
        "2",
        "--dilemma-limit",
        "2",
        "--followthrough-limit",
        "1",
        "--benign-limit",
        "1",
        "--max-rounds",
        "1",
        "--max-tokens",
        "4",
        "--latency-tokens",
        "4",
        "--json",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for side in ("base", "defended"):
        assert set(out[side]) == {
            "trial_asr",
            "trial_turn1_act",
            "direct_asr",
            "strongreject_asr",
            "over_refusal",
            "engagement",
            "swap_consistency",
            "reference_agreement",
            "followthrough",
        }
        assert out["engagement_ci"][side]["engagement_n"] == 4  # 2 dilemmas, each in both option orders
        assert all(0 <= v <= 1 for v in out[side].values())
        ci = out["ci"][side]
        assert ci["trial_asr"]["n"] == 1 and ci["over_refusal"]["n"] == 2 and ci["engagement"]["n"] == 4
        assert ci["swap_consistency"]["n"] == 2 and ci["followthrough"]["n"] == 2  # 1 dilemma, 2 follow-ups
        assert all(r["ci_low"] <= out[side][k] <= r["ci_high"] for k, r in ci.items())
    assert out["benign_kl"] >= 0 and 0 <= out["gate_accuracy"] <= 1 and out["latency_ratio"] > 0
    assert out["ci"]["gate_accuracy"]["harmful"]["n"] == 2 and out["ci"]["gate_accuracy"]["benign"]["n"] == 1
    assert out["ci"]["benign_kl"]["n"] == 1 and out["ci"]["latency_ratio"]["n"] == 1
    assert out["ci"]["settings"]["seed"] == 0 and out["ci"]["settings"]["resamples"] == 2000


def test_gate_only_retraining_keeps_the_adapters(trained, cli, tmp_path):
    from safetensors.torch import load_file

    proc = cli(
        "defend",
        "train",
        "--model",
        "embedded",
        "--data",
        trained / "data",
        "--out",
        tmp_path / "g",
        "--stages",
        "gate",
        "--init",
        trained / "def",
        "--gate-epochs",
        "5",
        "--gate-lr",
        "1e-2",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    before, after = load_file(str(trained / "def" / WEIGHTS_NAME)), load_file(str(tmp_path / "g" / WEIGHTS_NAME))
    assert before.keys() == after.keys()
    assert all((before[k] == after[k]).all() for k in before if k.startswith("adapters."))
    assert any(not (before[k] == after[k]).all() for k in before if k.startswith("gate."))  # the gate moved
    assert DefenseConfig.load(tmp_path / "g").start_layer == 27  # the layout came from --init
    assert_clean_error(
        cli(
            "defend",
            "train",
            "--model",
            "embedded",
            "--data",
            trained / "data",
            "--out",
            tmp_path / "x",
            "--stages",
            "gate",
            "--init",
            tmp_path / "nothing",
        ),
        "--init",
    )


def test_user_errors_are_one_line(trained, cli, tmp_path):
    assert_clean_error(
        cli("defend", "train", "--model", "embedded", "--data", tmp_path, "--out", tmp_path / "o"), "train.jsonl"
    )
    assert_clean_error(cli("serve", "--model", "embedded", "--defense", str(tmp_path)), "defense")
    assert_clean_error(
        cli(
            "defend",
            "train",
            "--model",
            "embedded",
            "--data",
            trained / "data",
            "--out",
            tmp_path / "o",
            "--detection-layer",
            "20",
            "--start-layer",
            "15",
        ),
        "detection-layer",
    )
