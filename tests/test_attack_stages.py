"""Each attack declares its stages with its registration (attacks/stages.py); the report reads them there."""

import re

import pytest

from dilemmakit.attacks import METHODS, stage_table
from dilemmakit.attacks.stages import Stage, StageGroup, StageTable, single
from dilemmakit.report import write_report
from dilemmakit.store.db import open_store
from dilemmakit.testing import ScriptedServer
from tests.helpers import run
from tests.report_data import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Every method over two behaviors (TRIAL with a pull-back and both follow-up modes), offline attacker."""
    path = tmp_path_factory.mktemp("stages") / "run"
    with ScriptedServer() as server:
        make_run(server, path, limit=2)
        run(server, path, limit=2, seed=11, max_rounds=4, followup_case="attacker")
        for name in METHODS.keys() - {"trial", "direct"}:
            run(server, path, limit=2, seed=11, max_rounds=3, method=name)
    return path


def stored_stages(run_dir) -> dict[str, set[str]]:
    store = open_store(run_dir, create=False)
    try:
        found: dict[str, set[str]] = {}
        for conv in store.conversations():
            found.setdefault(conv.method, set()).update(t.stage for t in store.turns(conv.id))
        return found
    finally:
        store.close()


def test_every_stage_an_attack_stores_is_declared_by_its_registration(run_dir):
    stored = stored_stages(run_dir)
    assert set(stored) == set(METHODS)
    for name, stages in stored.items():
        own = StageTable(METHODS[name].stages)
        undeclared = {s for s in stages if not any(d.matches(s) for g in own.groups.values() for d in g.stages)}
        assert not undeclared, f"{name} stores stages its registration does not declare: {sorted(undeclared)}"


def test_labels_and_groups_come_from_the_declarations():
    table = stage_table()
    assert table.label("followup_deepen") == "follow-up (deepen)"
    assert table.group("followup_attacker") == "followup"
    assert (table.group("write_scenario"), table.label("write_scenario")) == ("setup", "scenario draft")
    assert (table.group("pullback"), table.label("pullback")) == ("pullback", "pull-back")
    assert table.group_labels()["pullback"] == "pull-back"
    # a stage nobody declares (an older run's) shows as stored, after every declared group
    assert (table.group("old_step"), table.label("old_step")) == ("old_step", "old_step")
    assert sorted(["old_step", "direct", "setup"], key=table.sort_key) == ["setup", "direct", "old_step"]


def test_a_group_declared_twice_differently_is_refused():
    StageTable([single("x"), single("x")])
    with pytest.raises(TypeError, match="declared twice"):
        StageTable([single("x"), StageGroup("x", "x", (Stage("x", "other"),))])


def test_the_report_shows_the_declared_labels_in_declaration_order(run_dir, tmp_path):
    html = write_report(run_dir, tmp_path / "r.html").read_text()
    options = re.search(r'<select id="f-stage">(.*?)</select>', html).group(1)
    values = re.findall(r'<option value="([^"]*)">([^<]*)</option>', options)
    declared = list(stage_table().groups)
    assert [v for v, _ in values[1:]] == sorted((v for v, _ in values[1:]), key=declared.index)
    assert ("pullback", "pull-back") in values and ("followup", "follow-up") in values
    assert '<span class="stage">follow-up (attacker)</span>' in html
    assert '<span class="stage">scenario draft</span>' in html
    assert 'data-stages="followup pullback scenario setup"' in html
