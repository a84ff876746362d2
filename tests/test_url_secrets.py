"""Secrets inside a model spec -- an endpoint URL's `user:password@` and the `api_key=` option -- reach the
request and nothing else: not the run identity, the DB (and its WAL), exports, `summary --json`, the report,
the terminal or an error line."""

import asyncio
import base64

from dilemmakit.campaign import CampaignConfig, run_campaign
from dilemmakit.models.secrets import redact
from dilemmakit.models.spec import parse_spec, spec_identity
from dilemmakit.store.db import open_store
from dilemmakit.testing import ScriptedServer
from tests.helpers import COMPLY, OPTION_A, VAGUE, assert_clean_error, target_by_turn

PASSWORD = "s3cretpw"
KEY = "sk-opt-KEYSECRET-91c4"
SECRETS = (PASSWORD, KEY, "KEYSECRET")


def with_userinfo(spec: str) -> str:
    return spec.replace("http://", f"http://user:{PASSWORD}@", 1)


def secret_specs(server: ScriptedServer) -> dict[str, str]:
    return {
        "target": with_userinfo(server.spec("target")),  # user-info only: sent as Basic auth
        "attacker": with_userinfo(server.spec("attacker", api_key=KEY)),  # both: the Bearer key wins
        "helper": server.spec("helper"),
        "judge": f"jbb:{server.spec('judge', api_key=KEY)}",
    }


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"


def test_identity_drops_secrets_and_keeps_every_other_spec_as_it_was():
    plain = "openai:m@http://127.0.0.1:9/v1?top_k=4"
    secret = f"openai:m@http://user:{PASSWORD}@127.0.0.1:9/v1?api_key={KEY}&top_k=4&timeout=5"
    assert spec_identity(secret) == plain == spec_identity(plain)
    assert str(parse_spec(secret)) == "openai:m@http://***@127.0.0.1:9/v1?api_key=***&top_k=4&timeout=5"
    assert parse_spec(secret).text == secret  # the request still has them
    assert redact("see http://a:b@c:d@host/v1 and ?token=t1&key=k2&api_key_env=MY_VAR") == (
        "see http://***@host/v1 and ?token=***&key=***&api_key_env=MY_VAR"
    )


def test_secrets_are_sent_but_never_written_or_printed(server, tmp_path, cli):
    server.script("target", target_by_turn(OPTION_A, VAGUE, COMPLY))
    server.fail("target", *([500] * 6))  # one conversation ends in an error line, stored and printed
    specs = secret_specs(server)
    run_dir = tmp_path / "run"
    args = ["attack", "--target", specs["target"], "--attacker", specs["attacker"], "--helper", specs["helper"]]
    args += ["--judge", specs["judge"], "--run-dir", run_dir, "--limit", "2", "--max-rounds", "3"]
    env = {"OPENAI_API_KEY": ""}
    first = cli(*args, "--concurrency", "1", env=env)
    assert first.returncode == 3, first.stderr  # finished, one conversation failed
    assert "gave up after" in first.stderr
    outputs = {"attack stdout": first.stdout, "attack stderr": first.stderr}

    # The same run, resumed with another password and key: secrets are not part of the identity.
    again = [a.replace(PASSWORD, "other-pw").replace(KEY, "sk-other") for a in map(str, args)]
    second = cli(*again, env=env)
    assert second.returncode == 0, second.stderr
    assert "2/2 finished" in second.stderr
    outputs["resume stderr"] = second.stderr

    basic = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert basic in server.auth_headers and f"Bearer {KEY}" in server.auth_headers  # both really sent

    for name, command in {
        "summary --json": ("summary", "--run-dir", run_dir, "--json"),
        "summary": ("summary", "--run-dir", run_dir),
        "export jsonl": ("export", "--run-dir", run_dir),
        "export csv": ("export", "--run-dir", run_dir, "--format", "csv"),
        "report": ("report", "--run-dir", run_dir, "--out", tmp_path / "report.html", "--unredacted"),
    }.items():
        proc = cli(*command, check=True)
        outputs[name] = proc.stdout + proc.stderr
    outputs["report html"] = (tmp_path / "report.html").read_text()
    assert "openai:target@http://127.0.0.1" in outputs["export jsonl"]  # the target column, without user-info
    for where, text in outputs.items():
        assert_no_secret(text, where)
    for path in run_dir.iterdir():
        assert_no_secret(path.read_bytes().decode("latin-1"), path.name)


def test_the_db_and_its_wal_hold_no_secret_while_a_run_is_open(server, tmp_path):
    server.script("target", target_by_turn(OPTION_A, VAGUE, COMPLY))
    specs = secret_specs(server)
    config = CampaignConfig(
        target=specs["target"], attacker=specs["attacker"], helper=specs["helper"], judge=specs["judge"], limit=2
    )
    store = open_store(tmp_path)
    try:
        result = asyncio.run(run_campaign(config, store, show_progress=False))
        assert result.done == 2
        wal = tmp_path / "dilemma.sqlite-wal"
        assert wal.exists() and wal.stat().st_size > 0  # the writes sit in the WAL until it is checkpointed
        for path in tmp_path.iterdir():
            assert_no_secret(path.read_bytes().decode("latin-1"), path.name)
        assert_no_secret(str(store.runs()), "run config")
    finally:
        store.close()


def test_a_rejected_key_or_password_is_one_line_without_it(tmp_path, cli):
    with ScriptedServer(api_key="the-right-key") as keyed:
        for target in (
            with_userinfo(keyed.spec("target", api_key=KEY)),  # the spec's key, rejected
            with_userinfo(keyed.spec("target")),  # Basic auth from the URL, rejected
        ):
            proc = cli(
                "attack", "--target", target, "--run-dir", tmp_path / "run", "--quiet", env={"OPENAI_API_KEY": ""}
            )
            assert_clean_error(proc, "rejected")
            assert proc.returncode == 2
            assert_no_secret(proc.stdout + proc.stderr, target)
            assert not (tmp_path / "run").exists()  # nothing stored: no empty run DB left behind


def test_a_malformed_spec_with_a_secret_is_one_line_without_it(tmp_path, cli):
    for target in (
        f"openai:m@http://user:{PASSWORD}@127.0.0.1:9/v1?token={KEY}",  # unknown key-like option
        f"openai:m@http://user:{PASSWORD}@127.0.0.1:9/v1?api_key={KEY}&top_p=7",  # a bad value elsewhere
    ):
        proc = cli("attack", "--target", target, "--run-dir", tmp_path / "run")
        assert_clean_error(proc, "model spec")
        assert_no_secret(proc.stdout + proc.stderr, target)
