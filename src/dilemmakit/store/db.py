"""SQLite run database (WAL). One file per run dir: `<run-dir>/dilemma.sqlite`.

Each turn and verdict is its own transaction, so a killed process loses at most the call in flight;
the unique keys make a replayed write a no-op instead of a duplicate.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from dilemmakit.calls import CallStats
from dilemmakit.errors import UserError
from dilemmakit.verdict import Verdict

DB_NAME = "dilemma.sqlite"
LOCK_NAME = "dilemma.lock"  # held by the one process writing to the run dir (`RunDirLock`)
T = TypeVar("T")
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    created REAL NOT NULL
);
-- HTTP calls a run made, per model, summed over every invocation (resumes add theirs).
CREATE TABLE IF NOT EXISTS run_calls (
    run_id TEXT NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,         -- the model's identity (spec without transport options)
    calls INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,   -- calls that gave up after their retries
    retries_json TEXT NOT NULL DEFAULT '{}',  -- retries by cause: timeout, 429, 5xx, cut_stream, ...
    updated REAL NOT NULL,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    behavior_id TEXT NOT NULL,
    behavior TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',      -- pending | running | done | error
    success INTEGER,                             -- NULL until done
    rounds INTEGER NOT NULL DEFAULT 0,
    queries INTEGER NOT NULL DEFAULT 0,
    broken_turn INTEGER,                         -- turn idx of the first successful verdict
    error TEXT,
    updated REAL NOT NULL,
    UNIQUE (run_id, behavior_id, method, target)
);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    idx INTEGER NOT NULL,
    role TEXT NOT NULL,          -- helper | attacker | user | assistant
    stage TEXT NOT NULL,         -- clue | scenario | pullback | followup_refusal | ... | direct
    content TEXT NOT NULL,
    meta_json TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    UNIQUE (conversation_id, idx)
);
CREATE TABLE IF NOT EXISTS verdicts (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    turn_idx INTEGER NOT NULL,
    judge TEXT NOT NULL,
    label TEXT NOT NULL,         -- success | fail | error
    score REAL,
    raw TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE (conversation_id, turn_idx, judge)
);
-- Non-attack evaluations (over-refusal, utility): one row per eval run, one per item (resumable).
CREATE TABLE IF NOT EXISTS evals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,          -- overrefusal | utility:gsm8k | utility:humaneval
    target TEXT NOT NULL,
    config_json TEXT NOT NULL,
    result_json TEXT,            -- the headline numbers once finished
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_items (
    eval_id TEXT NOT NULL REFERENCES evals(id),
    item_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    output TEXT NOT NULL,
    label TEXT NOT NULL,         -- overrefusal: refused | complied | error; utility: pass | fail
    score REAL,
    meta_json TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    UNIQUE (eval_id, item_id)
);
"""
JUDGE_SPEC_KEY = "judge_spec:"  # meta key prefix: the spec of a judge added by `dilemma rejudge`
OWN_TABLES = {"meta", "runs", "run_calls", "conversations", "turns", "verdicts", "evals", "eval_items"}
# Columns added after the first release: (table, column, declaration). Added on open when missing.
ADDED_COLUMNS = (
    ("conversations", "final_verdict", "TEXT"),  # success | fail | error: the whole conversation's verdict
    ("conversations", "final_score", "REAL"),  # the best turn's graded score (judge scale)
)


@dataclass
class TurnRecord:
    idx: int
    role: str
    stage: str
    content: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalItem:
    item_id: str
    prompt: str
    output: str
    label: str
    score: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConversationRow:
    id: int
    run_id: str
    behavior_id: str
    behavior: str
    category: str
    method: str
    target: str
    status: str
    success: bool | None
    rounds: int
    queries: int
    broken_turn: int | None
    error: str | None
    final_verdict: str | None = None
    final_score: float | None = None


@dataclass(frozen=True)
class JudgedReply:
    """One stored verdict with the round of the reply it judged (summaries, agreement, rejudge)."""

    conversation_id: int
    turn_idx: int
    judge: str
    label: str
    score: float | None
    round: int  # the judged reply's target round, 1-based


@dataclass
class ExtraTable:
    """A table another command added to the run database, read as it is."""

    name: str
    columns: list[str]
    rows: list[list[Any]]  # the first rows only
    total: int


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """A write to the run database: a failed one (disk full, read-only disk, corrupt page) becomes one line;
    constraint errors stay what they are (callers rely on them)."""

    @functools.wraps(method)
    def write(self: RunStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc, writing=True) from None

    return write


class RunStore:
    """A run database. Writers (`read_only=False`) create the schema and hold the run dir's lock (`RunDirLock`)
    while open; readers (`summary`, `export`, `report`) open it with SQLite's `mode=ro`: no WAL switch, no
    schema script, nothing written, so they work beside a running writer and on a read-only disk. A file that
    is not a run database (corrupt, another program's) is refused before anything touches it."""

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = path
        self.read_only = read_only
        self._created = False  # this store created the file: removed again on close if nothing was stored
        self._made_dir: Path | None = None  # the run dir open_store created: removed with an unused file
        self._lock: RunDirLock | None = None
        if read_only:
            self.conn = _connect_read_only(path)
            self._check_ours(self.conn)
            return
        self._lock = RunDirLock.acquire(path.parent)
        try:
            self._open_for_writing()
        except BaseException:
            self._lock.release()
            raise

    def _open_for_writing(self) -> None:
        path = self.path
        existed = path.exists()
        if existed:  # look before touching: a foreign or corrupt file stays byte for byte as it is
            probe = _connect_read_only(path)
            try:
                self._check_ours(probe)
            finally:
                probe.close()
        self._created = not existed
        try:
            self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
            self._add_missing_columns()
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            error = _store_error(path, exc, writing=True)
            with contextlib.suppress(Exception):
                self.close()
            raise error from None

    def close(self) -> None:
        """Close; a database this store created and stored nothing in is removed (a failed first `attack`
        leaves no empty file behind)."""
        conn = getattr(self, "conn", None)
        empty = False
        if self._created and conn is not None:
            with contextlib.suppress(sqlite3.Error):
                empty = self._is_empty()
        if conn is not None:
            if not self.read_only and not empty:
                # Leave the file in rollback mode when idle: one file, which readers (`mode=ro`) open without
                # creating -wal/-shm files beside it, also on a read-only disk. Busy (a reader is in): stays WAL.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA journal_mode=DELETE")
            conn.close()
        discard = self._created and (empty or conn is None)
        if discard:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(f"{self.path}{suffix}").unlink()
            self._created = False
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if discard and self._made_dir is not None:
            with contextlib.suppress(OSError):
                self._made_dir.rmdir()  # only if empty

    def _is_empty(self) -> bool:
        tables = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in tables:
            if name == "meta" or name.startswith("sqlite_"):
                continue
            quoted = '"' + name.replace('"', '""') + '"'
            if self.conn.execute(f"SELECT 1 FROM {quoted} LIMIT 1").fetchone():
                return False
        return True

    def _check_ours(self, conn: sqlite3.Connection) -> None:
        """Raise UserError unless `conn` is a run database (or an empty file a writer may initialise)."""
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = row[0] if row else None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _store_error(self.path, exc, writing=False) from None
        if not tables:
            if self.read_only:
                conn.close()
                raise UserError(f"{self.path} holds no run yet: run `dilemma attack --run-dir {self.path.parent} ...`")
            return
        if version is None and not {"runs", "conversations"} <= tables:
            conn.close()
            raise UserError(
                f"{self.path} is not a dilemma run database (its tables: {', '.join(sorted(tables)[:5])}); "
                "it was left as it is: use another --run-dir"
            )
        if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
            conn.close()
            raise UserError(f"{self.path} was written by a newer dilemmakit (schema {version}): upgrade to read it")

    def _add_missing_columns(self) -> None:
        for table, column, decl in ADDED_COLUMNS:
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    # --- runs and conversations -------------------------------------------------------------
    @_writes
    def ensure_run(self, run_id: str, config: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO runs (id, config_json, created) VALUES (?, ?, ?)",
            (run_id, json.dumps(config, sort_keys=True), time.time()),
        )

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (r[0], json.loads(r[1])) for r in self.conn.execute("SELECT id, config_json FROM runs ORDER BY created")
        ]

    @_writes
    def add_call_stats(self, run_id: str, stats: dict[str, CallStats]) -> None:
        """Add one invocation's HTTP calls, per model, to the run's."""
        with self._transaction():
            stored = self.call_stats(run_id)
            for model, new in stats.items():
                total = stored.get(model, CallStats()) + new
                self.conn.execute(
                    "INSERT OR REPLACE INTO run_calls (run_id, model, calls, failures, retries_json, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        model,
                        total.calls,
                        total.failures,
                        json.dumps(total.retries, sort_keys=True),
                        time.time(),
                    ),
                )

    def call_stats(self, run_id: str) -> dict[str, CallStats]:
        """The run's HTTP calls per model."""
        return {
            model: CallStats(calls, failures, json.loads(retries))
            for model, calls, failures, retries in self.conn.execute(
                "SELECT model, calls, failures, retries_json FROM run_calls WHERE run_id=? ORDER BY model", (run_id,)
            )
        }

    @_writes
    def ensure_conversations(self, run_id: str, method: str, target: str, behaviors) -> None:
        now = time.time()
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO conversations (run_id, behavior_id, behavior, category, method, target, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, b.id, b.prompt, b.category, method, target, now) for b in behaviors],
            )

    def conversations(self, run_id: str | None = None, *, unfinished: bool = False) -> list[ConversationRow]:
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(conversations)")}
        added = ", ".join(c if c in have else f"NULL AS {c}" for c in ("final_verdict", "final_score"))
        sql = (  # a run stored before the added columns, opened read-only, reads them as NULL
            "SELECT id, run_id, behavior_id, behavior, category, method, target, status, success, rounds, queries,"
            f" broken_turn, error, {added} FROM conversations"
        )
        clauses, args = [], []
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        if unfinished:
            clauses.append("status != 'done'")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        rows = []
        for (
            id_,
            run_id_,
            behavior_id,
            behavior,
            category,
            method,
            target,
            status,
            success,
            rounds,
            queries,
            broken_turn,
            error,
            final_verdict,
            final_score,
        ) in self.conn.execute(sql, args):
            rows.append(
                ConversationRow(
                    id_,
                    run_id_,
                    behavior_id,
                    behavior,
                    category,
                    method,
                    target,
                    status,
                    None if success is None else bool(success),
                    rounds,
                    queries,
                    broken_turn,
                    error,
                    final_verdict,
                    final_score,
                )
            )
        return rows

    @_writes
    def mark_running(self, conversation_id: int) -> None:
        self.conn.execute(
            "UPDATE conversations SET status='running', error=NULL, updated=? WHERE id=?",
            (time.time(), conversation_id),
        )

    @_writes
    def finish(
        self,
        conversation_id: int,
        *,
        success: bool,
        rounds: int,
        queries: int,
        broken_turn: int | None,
        final_score: float | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE conversations SET status='done', success=?, rounds=?, queries=?, broken_turn=?, error=NULL,"
            " final_verdict=?, final_score=?, updated=? WHERE id=?",
            (
                int(success),
                rounds,
                queries,
                broken_turn,
                "success" if success else "fail",
                final_score,
                time.time(),
                conversation_id,
            ),
        )

    @_writes
    def mark_error(self, conversation_id: int, message: str) -> None:
        self.conn.execute(
            "UPDATE conversations SET status='error', error=?, final_verdict='error', updated=? WHERE id=?",
            (message[:2000], time.time(), conversation_id),
        )

    # --- turns and verdicts -------------------------------------------------------------------
    def turns(self, conversation_id: int) -> list[TurnRecord]:
        return [
            TurnRecord(idx, role, stage, content, json.loads(meta))
            for idx, role, stage, content, meta in self.conn.execute(
                "SELECT idx, role, stage, content, meta_json FROM turns WHERE conversation_id=? ORDER BY idx",
                (conversation_id,),
            )
        ]

    @_writes
    def add_turn(self, conversation_id: int, turn: TurnRecord) -> None:
        self.conn.execute(
            "INSERT INTO turns (conversation_id, idx, role, stage, content, meta_json, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, turn.idx, turn.role, turn.stage, turn.content, json.dumps(turn.meta), time.time()),
        )

    def verdicts(self, conversation_id: int) -> list[Verdict]:
        return [
            Verdict(label, score, raw, reason, judge=judge, turn_idx=turn_idx)
            for turn_idx, judge, label, score, raw, reason in self.conn.execute(
                "SELECT turn_idx, judge, label, score, raw, reason FROM verdicts WHERE conversation_id=? ORDER BY turn_idx",
                (conversation_id,),
            )
        ]

    def add_verdict(self, conversation_id: int, verdict: Verdict) -> None:
        self._write_verdict("INSERT", conversation_id, verdict)

    def replace_verdict(self, conversation_id: int, verdict: Verdict) -> None:
        """Store `verdict` in place of the one stored for the same turn and judge (a retried judge error)."""
        self._write_verdict("INSERT OR REPLACE", conversation_id, verdict)

    @_writes
    def _write_verdict(self, insert: str, conversation_id: int, verdict: Verdict) -> None:
        if verdict.turn_idx is None or not verdict.judge:
            raise ValueError("a stored verdict needs its turn_idx and judge")
        self.conn.execute(
            f"{insert} INTO verdicts (conversation_id, turn_idx, judge, label, score, raw, reason, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                verdict.turn_idx,
                verdict.judge,
                verdict.label,
                verdict.score,
                verdict.raw,
                verdict.reason,
                time.time(),
            ),
        )

    # --- verdicts by judge (summaries, agreement, rejudge) -------------------------------------
    def verdict_rows(self, judge: str | None = None) -> list[JudgedReply]:
        """Every stored verdict (or judge `judge`'s), with the round of the reply it judged."""
        sql = (
            "SELECT v.conversation_id, v.turn_idx, v.judge, v.label, v.score,"
            " (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = v.conversation_id"
            " AND t.role = 'assistant' AND t.idx <= v.turn_idx)"
            " FROM verdicts v"
        )
        args: list[Any] = []
        if judge is not None:
            sql += " WHERE v.judge = ?"
            args.append(judge)
        sql += " ORDER BY v.conversation_id, v.turn_idx, v.judge"
        return [JudgedReply(*row) for row in self.conn.execute(sql, args)]

    def helper_failures(self) -> dict[int, int]:
        """Per conversation, its helper steps that gave no usable output (TRIAL's clue, scenario)."""
        return dict(
            self.conn.execute(
                "SELECT conversation_id, COUNT(*) FROM turns WHERE role = 'helper'"
                " AND json_extract(meta_json, '$.helper_failed') = 1 GROUP BY conversation_id"
            ).fetchall()
        )

    def judge_specs(self) -> dict[str, str]:
        """The spec of each judge `dilemma rejudge` stored verdicts under (name -> spec)."""
        n = len(JUDGE_SPEC_KEY)
        return {
            key[n:]: value
            for key, value in self.conn.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (n, JUDGE_SPEC_KEY)
            )
        }

    @_writes
    def set_judge_spec(self, name: str, spec: str) -> None:
        """Record the judge spec verdicts named `name` come from (the first one recorded stays)."""
        self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (JUDGE_SPEC_KEY + name, spec))

    # --- evaluations (over-refusal, utility) --------------------------------------------------
    @_writes
    def ensure_eval(self, eval_id: str, kind: str, target: str, config: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO evals (id, kind, target, config_json, created) VALUES (?, ?, ?, ?, ?)",
            (eval_id, kind, target, json.dumps(config, sort_keys=True), time.time()),
        )

    def eval_items(self, eval_id: str) -> dict[str, EvalItem]:
        return {
            r[0]: EvalItem(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in self.conn.execute(
                "SELECT item_id, prompt, output, label, score, meta_json FROM eval_items WHERE eval_id=?", (eval_id,)
            )
        }

    @_writes
    def add_eval_item(self, eval_id: str, item: EvalItem) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO eval_items (eval_id, item_id, prompt, output, label, score, meta_json, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                eval_id,
                item.item_id,
                item.prompt,
                item.output,
                item.label,
                item.score,
                json.dumps(item.meta),
                time.time(),
            ),
        )

    @_writes
    def finish_eval(self, eval_id: str, result: dict[str, Any]) -> None:
        self.conn.execute("UPDATE evals SET result_json=? WHERE id=?", (json.dumps(result, sort_keys=True), eval_id))

    def evals(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r[0],
                "kind": r[1],
                "target": r[2],
                "config": json.loads(r[3]),
                "result": json.loads(r[4]) if r[4] else None,
            }
            for r in self.conn.execute("SELECT id, kind, target, config_json, result_json FROM evals ORDER BY created")
        ]

    def eval_item_counts(self) -> dict[str, int]:
        """Stored items per eval id."""
        return dict(self.conn.execute("SELECT eval_id, COUNT(*) FROM eval_items GROUP BY eval_id").fetchall())

    # --- tables other commands added ----------------------------------------------------------
    def extra_tables(self, max_rows: int) -> list[ExtraTable]:
        """Tables in this database that are not the store's own, each with its first `max_rows` rows;
        a table that cannot be read is left out."""
        tables = []
        names = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for name in names:
            if name in OWN_TABLES or name.startswith("sqlite_"):
                continue
            try:
                quoted = '"' + name.replace('"', '""') + '"'
                cursor = self.conn.execute(f"SELECT * FROM {quoted} LIMIT {int(max_rows)}")
                columns = [d[0] for d in cursor.description]
                rows = [list(r) for r in cursor.fetchall()]
                total = self.conn.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0]
            except sqlite3.Error:
                continue
            tables.append(ExtraTable(name, columns, rows, total))
        return tables

    def _transaction(self):
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        if exc_type:
            self.conn.execute("ROLLBACK")
            return False
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:  # e.g. the disk filled up: leave no transaction open behind the error
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        return False


def open_store(run_dir: str | Path, *, create: bool = True, read_only: bool = False) -> RunStore:
    """The run database of `run_dir`. A writer (the default) creates it when `create` and holds the run dir's
    lock; `read_only` opens an existing one for reading only (summary, export, report)."""
    run_dir = Path(run_dir).expanduser()
    path = run_dir / DB_NAME
    if (read_only or not create) and not path.exists():
        raise UserError(f"no run database in {run_dir}: run `dilemma attack --run-dir {run_dir} ...` first")
    made_dir = None
    if create and not read_only:
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"--run-dir {run_dir} exists and is not a directory")
        if not run_dir.exists():
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create run dir {run_dir}: {exc.strerror}") from None
            made_dir = run_dir
    try:
        store = RunStore(path, read_only=read_only)
    except BaseException:
        if made_dir is not None:
            with contextlib.suppress(OSError):
                made_dir.rmdir()
        raise
    store._made_dir = made_dir
    return store


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A `mode=ro` connection. A WAL database whose `-shm` file cannot be created (a read-only directory or
    disk) is opened as immutable: nothing can be writing to it there."""
    uri = path.resolve().as_uri()
    conn = None
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=30)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if os.access(path.parent, os.W_OK) or "unable to open" not in str(exc):
            raise _store_error(path, exc, writing=False) from None
    try:
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise _store_error(path, exc, writing=False) from None


def _store_error(path: Path, exc: sqlite3.Error, *, writing: bool) -> UserError:
    """One line for a database failure, saying what to do about it."""
    text = str(exc)
    if "full" in text:
        return UserError(
            f"cannot write to {path}: the disk is full; everything stored so far is kept: "
            "free some space and rerun the same command to resume"
        )
    if "readonly" in text or "read-only" in text:
        return UserError(f"cannot write to {path}: it is on a read-only disk or directory ({text})")
    if "not a database" in text or "malformed" in text:
        return UserError(
            f"{path} is not a usable dilemma run database ({text}); it was left as it is: use another --run-dir"
        )
    if "locked" in text or "busy" in text:
        return UserError(f"{path} is locked by another program ({text}); try again when it has finished")
    return UserError(f"cannot {'write to' if writing else 'read'} {path}: {text}")


class RunDirLock:
    """One writer per run dir: an exclusive `flock` on `<run-dir>/dilemma.lock`, which names its holder
    (pid, host). The kernel drops the lock when its process dies, however it dies, so a stale lock file is
    simply taken over. Within one process the lock is shared (re-entrant), so in-process callers that open
    the same run dir twice do not lock themselves out."""

    _held: ClassVar[dict[Path, RunDirLock]] = {}

    def __init__(self, path: Path, fd: int):
        self.path, self.fd, self.count = path, fd, 1

    @classmethod
    def acquire(cls, run_dir: Path) -> RunDirLock:
        path = (run_dir / LOCK_NAME).resolve()
        held = cls._held.get(path)
        if held is not None:
            held.count += 1
            return held
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise UserError(
                        f"cannot write to {run_dir}: it is on a read-only disk or directory "
                        "(summary, export and report can still read it)"
                    ) from None
                raise UserError(f"cannot lock {run_dir}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise UserError(
                    f"{run_dir} is in use by another writer ({holder}): wait for it to finish or use another "
                    "--run-dir (summary, export and report can read it meanwhile)"
                ) from None
            # The holder before us may have removed the file on release: lock the file that is there now.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {time.strftime('%H:%M:%S')}".encode(), 0
        )
        lock = cls(path, fd)
        cls._held[path] = lock
        return lock

    def release(self) -> None:
        self.count -= 1
        if self.count > 0:
            return
        self._held.pop(self.path, None)
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still locked: a waiting opener sees a new inode and retries
        os.close(self.fd)
