"""Load behaviors from the built-in sets or from a user's CSV/JSONL file."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from dilemmakit import resources
from dilemmakit.behaviors.behavior import Behavior
from dilemmakit.errors import UserError
from dilemmakit.userdata import ENCODING, loads_json

JBB_CATEGORIES = [
    "Harassment/Discrimination",
    "Malware/Hacking",
    "Physical harm",
    "Economic harm",
    "Fraud/Deception",
    "Disinformation",
    "Sexual/Adult content",
    "Privacy",
    "Expert advice",
    "Government decision-making",
]

BUILTIN_SETS = {
    # name: (file, prompt column, category column, id column)
    "jbb": ("jbb.jsonl", "prompt", None, None),
    "harmbench": ("harmbench.csv", "Behavior", "SemanticCategory", "BehaviorID"),
    "strongreject": ("strongreject.csv", "forbidden_prompt", "category", None),
    "advbench": ("advbench.csv", "Behavior", None, "BehaviorID"),
}


def behaviors_help() -> str:
    """The built-in sets for a help text: `jbb|harmbench|...`."""
    return "|".join(BUILTIN_SETS)


PROMPT_COLUMN_GUESSES = ("prompt", "behavior", "Behavior", "goal", "forbidden_prompt", "instruction", "question")
CATEGORY_COLUMN_GUESSES = ("category", "Category", "SemanticCategory")
ID_COLUMN_GUESSES = ("id", "behavior_id", "BehaviorID")
# A behavior is one request. A prompt (with its context) longer than this is a malformed row, refused at
# load: every attack and judge scans the prompt with keyword rules, and a 50 MB one took minutes.
MAX_PROMPT_CHARS = 100_000


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """Rows of a CSV or JSONL file with their line numbers; a malformed line is a UserError."""
    if not path.exists():
        raise UserError(f"behaviors file not found: {path}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding=ENCODING)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8 CSV or JSONL") from None
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = loads_json(line)
            except ValueError as exc:  # json.JSONDecodeError, nesting too deep included
                raise UserError(
                    f"{path}:{lineno}: malformed JSON line ({getattr(exc, 'msg', exc)}); fix or remove that line"
                ) from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
        return rows
    if suffix in (".csv", ".tsv"):
        return _read_csv_rows(path, text, delimiter="\t" if suffix == ".tsv" else ",")
    raise UserError(f"{path}: unsupported behaviors file type {suffix or '(none)'}; use .csv or .jsonl")


def _read_csv_rows(path: Path, text: str, delimiter: str) -> list[tuple[int, dict]]:
    """Strict CSV: an unterminated quote or a row whose field count differs from the header's is a
    UserError naming the line where that row starts, never a behavior made of the rest of the file."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, dict]] = []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            problem = "a quoted field is never closed (unterminated quote)" if "end of data" in str(exc) else str(exc)
            if "field larger than field limit" in str(exc):
                problem = (
                    f"a field is over {csv.field_size_limit():,} characters (a prompt may have {MAX_PROMPT_CHARS:,})"
                )
            raise UserError(f"{path}:{start}: malformed CSV row: {problem}") from None
        if not fields:  # a blank line
            continue
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            separators = "tabs" if delimiter == "\t" else "commas"
            raise UserError(
                f"{path}:{start}: malformed CSV row: {len(fields)} fields where the header has "
                f"{len(header)}; quote fields that contain {separators}"
            )
        rows.append((start, dict(zip(header, fields, strict=True))))


def _pick_column(
    rows: list[tuple[int, dict]], wanted: str | None, guesses: tuple[str, ...], path: Path, what: str
) -> str | None:
    columns = list(rows[0][1].keys()) if rows else []
    if wanted:
        if wanted not in columns:
            raise UserError(f"{path}: no column {wanted!r} for {what}; columns are: {', '.join(map(str, columns))}")
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    return None


def _rows_to_behaviors(
    rows,
    path: Path,
    source: str,
    prompt_col: str,
    category_col: str | None,
    id_col: str | None,
    context_col: str | None = None,
) -> list[Behavior]:
    behaviors: list[Behavior] = []
    seen: set[str] = set()
    for index, (lineno, row) in enumerate(rows):
        prompt = row.get(prompt_col)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{path}:{lineno}: empty or missing {prompt_col!r}; every row needs a prompt")
        context = (row.get(context_col) or "").strip() if context_col else ""
        text = f"{context}\n\n---\n\n{prompt.strip()}" if context else prompt.strip()
        if len(text) > MAX_PROMPT_CHARS:
            raise UserError(
                f"{path}:{lineno}: the prompt is {len(text):,} characters, over the {MAX_PROMPT_CHARS:,} a behavior "
                "may have; a row is one request: shorten it or fix the file"
            )
        bid = str(row.get(id_col) or "").strip() if id_col else ""
        bid = bid or f"{source}-{index:04d}"
        if bid in seen:
            raise UserError(f"{path}:{lineno}: duplicate behavior id {bid!r}; ids must be unique")
        seen.add(bid)
        category = str(row.get(category_col) or "").strip() if category_col else ""
        behaviors.append(Behavior(id=bid, prompt=text, category=category, source=source))
    return behaviors


def builtin_path(name: str) -> Path:
    return resources.path("dilemmakit.behaviors", "data", BUILTIN_SETS[name][0])


def load_builtin(name: str) -> list[Behavior]:
    file, prompt_col, category_col, id_col = BUILTIN_SETS[name]
    path = builtin_path(name)
    rows = _read_rows(path)
    context_col = "ContextString" if name == "harmbench" else None
    behaviors = _rows_to_behaviors(rows, path, name, prompt_col, category_col, id_col, context_col)
    if name == "jbb":
        behaviors = [
            Behavior(b.id, b.prompt, JBB_CATEGORIES[i // 10] if i < 100 else "", b.source)
            for i, b in enumerate(behaviors)
        ]
    return behaviors


def load_file(path: Path, prompt_column: str | None = None) -> list[Behavior]:
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows; the file needs a header/objects with a prompt column")
    prompt_col = _pick_column(rows, prompt_column, PROMPT_COLUMN_GUESSES, path, "prompts")
    if prompt_col is None:
        columns = ", ".join(
            " ".join(str(c).split()) or repr(c) for c in rows[0][1]
        )  # one line, whatever the header holds
        raise UserError(
            f"{path}: cannot tell which column holds the prompts (columns: {columns}); pass --prompt-column"
        )
    category_col = _pick_column(rows, None, CATEGORY_COLUMN_GUESSES, path, "categories")
    id_col = _pick_column(rows, None, ID_COLUMN_GUESSES, path, "ids")
    return _rows_to_behaviors(rows, path, path.stem, prompt_col, category_col, id_col)


ORDERS = ("stratified", "file")


def stratified_order(behaviors: list[Behavior], seed: int | None = None) -> list[Behavior]:
    """All behaviors in the order `--limit` takes them: categories take turns, so every prefix is balanced
    across categories, and a larger limit extends a smaller one's selection (a resumed run keeps its
    conversations). A seed shuffles the order of the categories and the order within each; without one,
    both follow the file, so a limit of 1 is the file's first behavior."""
    by_category: dict[str, list[Behavior]] = {}
    for behavior in behaviors:
        by_category.setdefault(behavior.category, []).append(behavior)
    categories = list(by_category)
    if seed is not None:
        rng = random.Random(seed)
        rng.shuffle(categories)
        for category in categories:
            rng.shuffle(by_category[category])
    ordered: list[Behavior] = []
    for rank in range(max((len(group) for group in by_category.values()), default=0)):
        ordered.extend(by_category[c][rank] for c in categories if rank < len(by_category[c]))
    return ordered


def load_behaviors(
    source: str = "jbb",
    *,
    prompt_column: str | None = None,
    limit: int | None = None,
    category: str | None = None,
    seed: int | None = None,
    order: str = "stratified",
) -> list[Behavior]:
    """Behaviors from a built-in set name or a file path, filtered by category, then limited.

    `limit` takes N behaviors balanced across categories (see `stratified_order`; `seed` shuffles the
    pick), or with `order="file"` the file's first N. They come back in file order.
    """
    if order not in ORDERS:
        raise UserError(f"unknown behaviors order {order!r}; use {' or '.join(ORDERS)}")
    if source in BUILTIN_SETS:
        if prompt_column:
            raise UserError("--prompt-column applies to a behaviors file, not to a built-in set")
        behaviors = load_builtin(source)
    else:
        path = Path(source).expanduser()
        if not path.exists() and path.suffix == "":
            raise UserError(f"unknown behaviors set {source!r}: use {'|'.join(BUILTIN_SETS)} or a .csv/.jsonl path")
        behaviors = load_file(path, prompt_column)
    if category:
        wanted = category.strip().lower()
        kept = [b for b in behaviors if b.category.lower() == wanted]
        if not kept:
            known = sorted({b.category for b in behaviors if b.category})
            hint = f"categories are: {', '.join(known)}" if known else "this set has no categories"
            raise UserError(f"no behaviors in category {category!r}; {hint}")
        behaviors = kept
    if limit is not None:
        if limit < 1:
            raise UserError("--limit must be at least 1")
        if order == "file":
            behaviors = behaviors[:limit]
        else:
            chosen = {b.id for b in stratified_order(behaviors, seed)[:limit]}
            behaviors = [b for b in behaviors if b.id in chosen]
    return behaviors
