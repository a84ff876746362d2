"""Each attack owns its typed options (attacks/registry.py); the campaign, the CLI and --config derive from them."""

import pytest

import dilemmakit.cli.main  # noqa: F401  (registers every command)
from dilemmakit.attacks import METHODS, AttackOptions, option_fields
from dilemmakit.attacks.pair import PairOptions
from dilemmakit.campaign import CampaignConfig
from dilemmakit.cli.app import app as _app
from dilemmakit.cli.config import build_default_map
from dilemmakit.config import Config, identity_of, option
from dilemmakit.errors import UserError

URL = "openai:m@http://127.0.0.1:9/v1"


def test_a_method_gets_its_own_typed_options():
    config = CampaignConfig(target=URL, method="pair", n_streams=2)
    assert isinstance(config.options, PairOptions) and config.options.n_streams == 2
    assert CampaignConfig(target=URL, method="pair", options=PairOptions(n_streams=2)).run_id() == config.run_id()
    assert type(CampaignConfig(target=URL, method="direct").options) is AttackOptions


def test_another_methods_options_are_ignored_and_stay_out_of_the_identity():
    plain = CampaignConfig(target=URL, method="trial")
    other = CampaignConfig(target=URL, method="trial", n_streams=3, actor_num=5)
    assert type(other.options) is METHODS["trial"].options
    assert other.run_id() == plain.run_id()


def test_option_values_are_checked_by_their_attacks_model():
    with pytest.raises(Exception, match="greater than or equal to 1"):
        CampaignConfig(target=URL, method="pair", keep_last_n=0)
    with pytest.raises(Exception, match="'rule' or 'attacker'"):
        CampaignConfig(target=URL, followup_case="sometimes")
    with pytest.raises(ValueError, match="not the options of method"):
        CampaignConfig(target=URL, method="trial", options=PairOptions())


def test_identity_is_declared_on_the_field():
    class Demo(Config):
        kept: int = option(1)
        dropped: int = option(2, identity=False)
        late: int = option(3, identity="if_set")

    assert identity_of(Demo()) == {"kept": 1}
    assert identity_of(Demo(late=4, dropped=9)) == {"kept": 1, "late": 4}
    identity = CampaignConfig(target=URL, method="actor", actor_num=2, concurrency=3, limit=1).identity()
    assert identity["actor_num"] == 2 and "concurrency" not in identity and "limit" not in identity


def test_every_registered_option_is_an_attack_flag_and_a_config_key():
    from dilemmakit.cli.options import cli_fields

    assert set(option_fields()) <= set(cli_fields(CampaignConfig))
    assert set(option_fields()) >= {"followup_case", "on_helper_failure", "n_streams", "keep_last_n", "actor_num"}


def test_a_config_file_value_is_checked_against_the_fields_constraints():
    import typer.main

    root = typer.main.get_command(_app)
    assert build_default_map(root, {"attack": {"n-streams": 2}})["attack"]["n_streams"] == 2
    with pytest.raises(UserError, match=r"\[attack\] n-streams: .*greater than or equal to 1, got 0"):
        build_default_map(root, {"attack": {"n-streams": 0}})
    with pytest.raises(UserError, match=r"\[attack\] max_rounds: .*greater than or equal to 1"):
        build_default_map(root, {"attack": {"max_rounds": 0}})


def test_adapter_config_is_a_subset_of_defense_config_with_its_types():
    import dataclasses
    from typing import get_type_hints

    from dilemmakit.defense.config import DefenseConfig
    from dilemmakit.err.config import AdapterConfig

    defense = get_type_hints(DefenseConfig)
    assert {f.name for f in dataclasses.fields(DefenseConfig)} >= set(AdapterConfig.model_fields)
    for name, field in AdapterConfig.model_fields.items():
        assert field.annotation == defense[name], name
    assert dataclasses.asdict(AdapterConfig(rank=2).defense_config())["rank"] == 2
    with pytest.raises(Exception, match="less than or equal to 1"):
        AdapterConfig(threshold=1.5)
