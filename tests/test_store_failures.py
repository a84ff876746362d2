"""A run store that fails cleanly: a corrupt file, another program's database, a full disk -> one line and
exit 2 with the file untouched; readers (`summary`, `export`, `report`) open read-only and work on a read-only
disk; one writer per run dir while readers go on; Ctrl-C says how to resume."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dilemmakit.store.db import DB_NAME, LOCK_NAME, open_store
from dilemmakit.testing import ScriptedServer
from tests.helpers import OPTION_A, REPO, VAGUE, assert_clean_error, patience, run, target_by_turn

DEAD = "openai:m@http://127.0.0.1:9/v1?max_retries=0"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readers(run_dir: Path, out: Path) -> list[tuple[str, ...]]:
    return [
        ("summary", "--run-dir", str(run_dir), "--json"),
        ("export", "--run-dir", str(run_dir)),
        ("report", "--run-dir", str(run_dir), "--out", str(out)),
    ]


def attack_cmd(server: ScriptedServer, run_dir: Path, *extra: str) -> list[str]:
    return [
        "attack",
        "--target",
        server.spec("target"),
        "--method",
        "direct",
        "--run-dir",
        str(run_dir),
        "--limit",
        "4",
        "--concurrency",
        "1",
        "--quiet",
        *extra,
    ]


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs of its own (a full or read-only disk without touching the machine's); skipped where the
    test may not mount one."""
    mounts = []

    def mount(size: str) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or 'not permitted'})")
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def make_foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_a_file_that_is_not_a_run_db_is_one_line_and_left_untouched(kind, tmp_path, cli):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    db = run_dir / DB_NAME
    if kind == "corrupt":
        db.write_bytes(b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 4000)
    else:
        make_foreign(db)
    before = digest(db)
    for command in [*readers(run_dir, tmp_path / "r.html"), ("attack", "--target", DEAD, "--run-dir", str(run_dir))]:
        proc = cli(*command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert_clean_error(proc, str(db))
        assert "left as it is" in proc.stderr
        assert digest(db) == before, command
        assert sorted(p.name for p in run_dir.iterdir()) == [DB_NAME], command  # no lock, -wal or -shm left


def test_readers_write_nothing(server, tmp_path, cli):
    server.script("target", target_by_turn(OPTION_A, VAGUE))
    run(server, tmp_path / "run", limit=2)
    run_dir = tmp_path / "run"
    files = {p.name: digest(p) for p in run_dir.iterdir()}
    assert files.keys() == {DB_NAME}  # a closed run is one file (rollback mode when idle)
    for command in readers(run_dir, tmp_path / "r.html"):
        cli(*command, check=True)
    assert {p.name: digest(p) for p in run_dir.iterdir()} == files


def test_a_finished_run_on_a_read_only_disk_can_be_read(server, tmpfs, tmp_path, cli):
    disk = tmpfs("4m")
    run_dir = disk / "run"
    server.script("target", target_by_turn(OPTION_A, VAGUE))
    cli(*attack_cmd(server, run_dir), check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    summary = cli("summary", "--run-dir", run_dir, "--json", check=True)
    assert '"by_method"' in summary.stdout
    export = cli("export", "--run-dir", run_dir, check=True)
    assert len(export.stdout.splitlines()) == 4
    cli("report", "--run-dir", run_dir, "--out", tmp_path / "r.html", check=True)
    assert (tmp_path / "r.html").stat().st_size > 0
    proc = cli(*attack_cmd(server, run_dir))  # a writer says why it cannot
    assert proc.returncode == 2
    assert_clean_error(proc, "read-only")


def test_disk_full_is_one_line_and_freeing_space_resumes_with_nothing_lost(server, tmpfs, cli):
    disk = tmpfs("4m")
    run_dir = disk / "run"
    server.script("target", lambda messages: "Option A. " + "A long careful answer. " * 1500)  # ~33 KB a reply
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (4 * 1024 * 1024 - 180 * 1024))  # leave about 180 KB: room for a few replies
    proc = cli(*attack_cmd(server, run_dir, "--limit", "12"))
    assert proc.returncode == 2, proc.stderr
    assert_clean_error(proc, "disk is full", "rerun")
    assert "Traceback" not in proc.stderr
    store = open_store(run_dir, read_only=True)
    kept = {c.behavior_id: store.turns(c.id) for c in store.conversations() if c.status == "done"}
    store.close()
    filler.unlink()
    proc = cli(*attack_cmd(server, run_dir, "--limit", "12"))
    assert proc.returncode == 0, proc.stderr
    store = open_store(run_dir, read_only=True)
    try:
        rows = store.conversations()
        assert len(rows) == 12 and all(c.status == "done" for c in rows)
        for c in rows:  # what was stored before the disk filled is still there, unchanged
            if c.behavior_id in kept:
                assert store.turns(c.id) == kept[c.behavior_id]
    finally:
        store.close()


def test_a_failed_first_attack_leaves_no_run_db(tmp_path, cli):
    run_dir = tmp_path / "run"
    proc = cli("attack", "--target", DEAD, "--run-dir", run_dir)
    assert_clean_error(proc, "cannot reach")
    assert not run_dir.exists()
    run_dir.mkdir()
    proc = cli("attack", "--target", DEAD, "--run-dir", run_dir)
    assert proc.returncode == 2
    assert list(run_dir.iterdir()) == []


def start_attack(server: ScriptedServer, run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilemmakit.cli.main", *attack_cmd(server, run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while not server.requests:  # the writer is past its checks and holds the run dir
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the attack never reached the server"
        time.sleep(0.1)
    return proc


def held_target(gate: threading.Event):
    """A target that answers only once `gate` is set: a writer stays mid-run for as long as a test needs."""

    def reply(messages):
        gate.wait(300)
        return OPTION_A

    return reply


def test_one_writer_per_run_dir_while_readers_go_on(server, tmp_path, cli):
    run_dir = tmp_path / "run"
    gate = threading.Event()
    server.script("target", held_target(gate))
    first = start_attack(server, run_dir)
    try:
        second = cli(*attack_cmd(server, run_dir))
        assert second.returncode == 2, second.stderr
        assert_clean_error(second, "in use by another writer", f"pid {first.pid}")
        summary = cli("summary", "--run-dir", run_dir, "--json")
        assert summary.returncode == 0, summary.stderr
    finally:
        first.kill()  # kill -9: the kernel drops its lock; the lock file it leaves is taken over
        first.communicate()
        gate.set()
    assert (run_dir / LOCK_NAME).exists()
    resumed = cli(*attack_cmd(server, run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "4/4 finished" in resumed.stderr
    assert not (run_dir / LOCK_NAME).exists()


def test_ctrl_c_exits_130_and_says_how_to_resume(server, tmp_path, cli):
    run_dir = tmp_path / "run"
    gate = threading.Event()
    server.script("target", held_target(gate))
    proc = start_attack(server, run_dir)
    proc.send_signal(signal.SIGINT)
    gate.set()  # the held request returns: an attack that ignored Ctrl-C would now finish and exit 0
    out, err = proc.communicate(timeout=patience(120))
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "rerun the same command to resume" in err
    resumed = cli(*attack_cmd(server, run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "4/4 finished" in resumed.stderr
