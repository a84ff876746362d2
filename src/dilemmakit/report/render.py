"""Render ReportData into one self-contained HTML page (inline CSS, JS, SVG and PNG data URIs)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from dilemmakit import resources
from dilemmakit.attacks import option_fields, stage_table
from dilemmakit.eval.summary import CISettings, SummaryRow
from dilemmakit.report import svg
from dilemmakit.report.collect import Artefact, ConversationView, ReportData, TurnView
from dilemmakit.report.redact import placeholder, quote_placeholder, quotes_any, scrub_url_credentials

_METRICS = ["n", "successes", "asr", "asr_ci", "mean_rounds_to_success", "queries", "errors", "unfinished"]
_HEADERS = {
    "n": "n (finished)",
    "asr": "ASR",
    "asr_ci": "95% CI",
    "mean_rounds_to_success": "rounds to success",
    "clas_score": "CLAS score",
    "clas_score_ci": "CLAS 95% CI",
    "helper_failures": "helper failures",
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return '<td class="num">-</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, float)):
        if (
            isinstance(value, float)
            and any(w in key.lower() for w in ("asr", "rate", "agreement", "accuracy"))
            and 0 <= value <= 1
        ):
            text = _pct(value)
        elif isinstance(value, float):
            text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.1f}"
        else:
            text = str(value)
        return f'<td class="num">{text}</td>'
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value)
    text = str(value)
    if len(text) > 200:  # long text in a stored table may be a completion: show its size only
        return f'<td class="sub">[text, {len(text)} characters]</td>'
    return f"<td>{escape(scrub_url_credentials(text))}</td>"


def table(
    columns: list[str], rows: Iterable[list[Any]], *, headers: dict[str, str] | None = None, cls: str = ""
) -> str:
    headers = headers or {}
    head = "".join(f"<th>{escape(headers.get(c, c.replace('_', ' ')))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(c, v) for c, v in zip(columns, row, strict=False)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def asr_table(rows: list[tuple[str, SummaryRow]], keys: list[str], cls: str, *, with_run: bool) -> str:
    """An ASR table of (run DB, row) pairs; a run column when the report covers several run DBs."""
    if not rows:
        return '<p class="empty">no conversations</p>'
    metrics = list(_METRICS)
    if any(r.clas_n for _, r in rows):  # the paper's CLAS ASR: mean best mapped score / 100
        metrics[4:4] = ["clas_score", "clas_score_ci"]
    if any(r.helper_failures for _, r in rows):
        metrics.append("helper_failures")
    if any(r.retries for _, r in rows):  # the HTTP client's retries of the row's runs
        metrics.append("retries")
    columns = (["run"] if with_run else []) + keys + metrics
    body = []
    for run, r in rows:
        values = {
            "run": run,
            **{k: getattr(r, k) for k in keys},
            **r.metrics(),
            "asr_ci": f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]",
            "clas_score": r.clas_score if r.clas_n else None,
            "clas_score_ci": f"[{r.clas_ci_low:.3f}, {r.clas_ci_high:.3f}]" if r.clas_n else None,
        }
        body.append([values[c] for c in columns])
    return table(columns, body, headers=_HEADERS, cls=cls)


# --- sections ------------------------------------------------------------------------------------
def _runs_section(data: ReportData) -> str:
    keys = [
        "method",
        "target",
        "attacker",
        "helper",
        "judge",
        "behaviors",
        "framework",
        "max_rounds",
        "judge_skip_rounds",
        "target_max_tokens",
        "seed",
    ]
    # each attack's own options (`attacks.registry`), where some run has them (set ones enter its config)
    keys += [k for k in option_fields() if any(k in cfg for _, cfg in data.runs)]
    rows = [[run_id] + [cfg.get(k) for k in keys] for run_id, cfg in data.runs]
    return (
        '<section id="runs"><h2>Runs</h2>'
        + (table(["run"] + keys, rows, cls="runs") if rows else '<p class="empty">no runs stored</p>')
        + "</section>"
    )


def _ci_note(ci: CISettings) -> str:
    return escape(
        f" {100 * ci.level:.0f}% confidence intervals: method {ci.method}, resamples {ci.resamples}, seed {ci.seed}."
    )


def _summary_section(data: ReportData) -> str:
    with_run = len(data.summaries) > 1

    def rows(grouping: str) -> list[tuple[str, SummaryRow]]:
        return [(label, row) for label, s in data.summaries for row in getattr(s, grouping)]

    main_rows = rows("by_method_target")
    bars = [
        svg.Bar(
            f"{run}: {r.method} · {r.target}" if with_run else f"{r.method} · {r.target}", r.asr, r.ci_low, r.ci_high
        )
        for run, r in main_rows
    ]
    parts = [
        '<section id="summary"><h2>Attack success rate</h2>',
        '<p class="note">ASR = conversations the judge called a success / finished conversations. '
        "Errors and unfinished conversations are counted apart, never as successes or refusals."
        + (_ci_note(data.summaries[0][1].ci) if data.summaries else "")
        + (
            " CLAS score (runs judged by clas:) = the mean over finished conversations of their best judged "
            "score mapped 1-5 to 0-100, divided by 100 (the paper's ASR for CLAS); ASR counts only full "
            "compliance (a 5)."
            if any(r.clas_n for _, r in main_rows)
            else ""
        )
        + (
            " Helper failures = TRIAL conversations whose helper gave no usable clue or scenario "
            "(then a rule-based clue or template scenario, or the conversation ends as a failed attempt: "
            "--on-helper-failure)."
            if any(r.helper_failures for _, r in main_rows)
            else ""
        )
        + "</p>",
    ]
    if bars:
        parts.append(f'<div class="charts">{svg.hbars(bars, title="ASR by method and target")}</div>')
    parts.append(
        "<h3>By method and target</h3>" + asr_table(main_rows, ["method", "target"], "asr-main", with_run=with_run)
    )
    parts.append(
        "<h3>By method and category</h3>"
        + asr_table(rows("by_method_category"), ["method", "category"], "asr-category", with_run=with_run)
    )
    parts.append(
        "<h3>By method, target and category</h3>"
        + asr_table(rows("by_method_target_category"), ["method", "target", "category"], "asr-mtc", with_run=with_run)
    )
    parts.append("</section>")
    return "".join(parts)


def _rounds_section(data: ReportData) -> str:
    hist = data.rounds_to_success
    parts = ['<section id="rounds"><h2>Rounds to success</h2>']
    if not hist:
        parts.append('<p class="empty">no successful conversations</p></section>')
        return "".join(parts)
    max_round = max(r for counter in hist.values() for r in counter)
    groups = [str(r) for r in range(1, max_round + 1)]
    series = {m: [float(counter.get(r, 0)) for r in range(1, max_round + 1)] for m, counter in hist.items()}
    parts.append(
        '<div class="charts">'
        + svg.grouped_bars(
            groups, series, title="Successful conversations by round", y_label="target round of the first success"
        )
        + "</div>"
    )
    rows = [
        [m] + [counter.get(r, 0) for r in range(1, max_round + 1)] + [sum(counter.values())]
        for m, counter in hist.items()
    ]
    parts.append(table(["method"] + [f"round {g}" for g in groups] + ["total"], rows, cls="rounds"))
    parts.append("</section>")
    return "".join(parts)


def _judges_section(data: ReportData) -> str:
    parts = ['<section id="judges"><h2>Judge agreement</h2>']
    parts += [_artefact_html(a, data.run_dir) for a in data.artefacts if a.kind == "judge"]
    with_run = len(data.summaries) > 1
    per_judge = [(label, row) for label, s in data.summaries for row in s.by_judge]
    if per_judge:
        parts.append(
            "<h3>ASR per judge</h3>"
            '<p class="note">Each run judged again by another judge (<code>dilemma rejudge</code>): a conversation '
            "is a success under a judge iff it called one of its judged replies a success; conversations a judge "
            "has not judged yet count as unfinished.</p>"
            + asr_table(per_judge, ["method", "target", "judge"], "asr-judge", with_run=with_run)
        )
    if data.judge_agreement:
        parts.append(
            "<h3>Agreement on the same replies</h3>"
            '<p class="note">Replies labelled by both judges (judge errors left out): share of equal labels and '
            "Cohen's kappa, each with its 95% bootstrap CI (replies resampled), and the confusion counts.</p>"
        )
        columns = ["run"] if with_run else []
        columns += ["judge_a", "judge_b", "n", "agreement", "agreement_ci", "kappa", "kappa_ci"]
        columns += ["both_success", "a_only", "b_only", "both_fail"]
        rows = []
        for r in data.judge_agreement:
            values = {
                **r,
                **r["confusion"],
                "agreement_ci": f"[{_pct(r['agreement_ci'][0])}, {_pct(r['agreement_ci'][1])}]",
                "kappa_ci": None if r["kappa_ci"] is None else f"[{r['kappa_ci'][0]:.2f}, {r['kappa_ci'][1]:.2f}]",
            }
            rows.append([values[c] for c in columns])
        headers = {"agreement_ci": "95% CI", "kappa_ci": "kappa 95% CI", "a_only": "A only", "b_only": "B only"}
        parts.append(table(columns, rows, headers=headers, cls="agreement"))
    elif not any(a.kind == "judge" for a in data.artefacts):
        parts.append(
            '<p class="empty">one judge per reply in this run: agreement is not known '
            "(`dilemma judge-eval --json > RUN_DIR/judge_eval.json` adds agreement with human labels)</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _numeric_series(obj: Any, path: str = "", depth: int = 0) -> dict[str, list[float]]:
    """Lists of numbers (per layer, per epoch, ...) anywhere in a JSON artefact, by path."""
    out: dict[str, list[float]] = {}
    if depth > 4:
        return out
    if (
        isinstance(obj, list)
        and len(obj) >= 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj)
    ):
        out[path or "values"] = [float(v) for v in obj]
    elif isinstance(obj, list) and len(obj) >= 2 and all(isinstance(v, dict) for v in obj):
        keys = {k for k, v in obj[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for k in sorted(keys):
            values = [r.get(k) for r in obj]
            if (
                all(isinstance(v, (int, float)) for v in values)
                and len(set(values)) > 1
                and k not in ("layer", "index", "epoch", "step")
            ):
                out[f"{path}.{k}".strip(".")] = [float(v) for v in values]
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_numeric_series(v, f"{path}.{k}".strip("."), depth + 1))
    return out


def _scalars(obj: Any, path: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if depth > 4:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _scalars(v, f"{path}.{k}".strip("."), depth + 1)
    elif not isinstance(obj, list):
        out.append((path or "value", obj))
    return out


# a measure's n and CI beside it (`defend eval`'s `trial_asr_n`, ...): bars of a comparison show the measure alone
_INTERVAL_SUFFIXES = ("_count", "_n", "_ci_low", "_ci_high")


def _comparisons(obj: Any, path: str = "", depth: int = 0) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """Dicts whose children are dicts of numbers sharing keys (e.g. before/after, base/defended)."""
    found: list[tuple[str, dict[str, dict[str, float]]]] = []
    if not isinstance(obj, dict) or depth > 3:
        return found
    children = {
        k: {
            mk: float(mv)
            for mk, mv in v.items()
            if isinstance(mv, (int, float)) and not isinstance(mv, bool) and not mk.endswith(_INTERVAL_SUFFIXES)
        }
        for k, v in obj.items()
        if isinstance(v, dict)
    }
    children = {k: v for k, v in children.items() if v}
    if len(children) >= 2 and set.intersection(*(set(v) for v in children.values())):
        found.append((path or "results", children))
    for k, v in obj.items():
        found += _comparisons(v, f"{path}.{k}".strip("."), depth + 1)
    return found


def _artefact_html(a: Artefact, run_dir: Path) -> str:
    rel = a.path.relative_to(run_dir) if a.path.is_relative_to(run_dir) else a.path
    parts = [f"<h3>{escape(str(rel))}</h3>"]
    charts = []
    series = _numeric_series(a.data)
    if series:
        for i in range(0, min(len(series), 24), 6):
            chunk = dict(list(series.items())[i : i + 6])
            charts.append(svg.lines(chunk, title=f"{rel.name}: curves", x_label="position (layer / step)"))
    for path, children in _comparisons(a.data)[:4]:
        metrics = sorted(set.intersection(*(set(v) for v in children.values())))[:12]
        charts.append(
            svg.grouped_bars(
                metrics,
                {k: [v[m] for m in metrics] for k, v in children.items()},
                title=f"{path}: " + " vs ".join(children),
            )
        )
    if charts:
        parts.append('<div class="charts">' + "".join(charts) + "</div>")
    for image in a.images:
        encoded = base64.b64encode(image.read_bytes()).decode()
        parts.append(
            f'<figure><img class="plot" alt="{escape(image.name)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{escape(image.name)}</figcaption></figure>"
        )
    scalars = _scalars(a.data)[:80]
    if scalars:
        body = "".join(f"<tr><td>{escape(k)}</td>{_cell(k, v)}</tr>" for k, v in scalars)
        parts.append(
            f'<div class="scroll"><table class="artefact"><thead><tr><th>field</th><th>value</th></tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    return "".join(parts)


def _artefacts_section(data: ReportData, kind: str, anchor: str, title: str, empty: str) -> str:
    found = [a for a in data.artefacts if a.kind == kind]
    body = "".join(_artefact_html(a, data.run_dir) for a in found) or f'<p class="empty">{escape(empty)}</p>'
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _evals_section(data: ReportData) -> str:
    if not data.evals:
        return ""
    rows = []
    for e in data.evals:
        result = e.get("result")
        flat = _scalars(result) if isinstance(result, dict) else []
        rows.append((e, dict(flat)))
    metrics = list(dict.fromkeys(k for _, flat in rows for k in flat))[:12]
    body = table(
        ["kind", "target", "items", "finished", "rate (95% CI)"] + metrics,
        [
            [e.get("kind"), e.get("target"), e.get("items"), e.get("result") is not None, _eval_headline(flat)]
            + [flat.get(m) for m in metrics]
            for e, flat in rows
        ],
        cls="evals",
    )
    return (
        '<section id="evals"><h2>Over-refusal, dilemma engagement, follow-through and utility evaluations</h2>'
        '<p class="note">Stored by the eval commands in this run DB; a defended model is just another target. '
        "Dilemma engagement (a choice and a reason on held-out benign dilemmas) and swap-consistency (the same "
        "option content chosen in both option orders) are keyword measures; follow-through (harmless follow-up "
        "requests carried out, not restated, refused or looping) is read by feature rules.</p>"
        f"{body}</section>"
    )


def _eval_headline(flat: dict[str, Any]) -> str | None:
    """An eval's main rate, with its 95% CI and n where the eval reports them."""
    keys = ("over_refusal", "engagement", "followthrough", "score")
    key = next((k for k in keys if isinstance(flat.get(k), (int, float))), None)
    if key is None:
        return None
    ci = f" [{_pct(flat['ci_low'])}, {_pct(flat['ci_high'])}]" if "ci_low" in flat and "ci_high" in flat else ""
    line = f"{key.replace('_', '-')} {_pct(flat[key])}{ci}, n={flat.get('n', '?')}"
    if isinstance(flat.get("swap_consistency"), (int, float)):
        line += (
            f"; swap-consistency {_pct(flat['swap_consistency'])} [{_pct(flat.get('swap_ci_low', 0))}, "
            f"{_pct(flat.get('swap_ci_high', 0))}], n={flat.get('swap_n', '?')}"
        )
    return line


_FINDING_MEASURES = {
    "direct": "direct ASR",
    "trial": "TRIAL ASR",
    "picks_act": "TRIAL turn 1 picks the act",
    "engagement": "benign-dilemma engagement",
    "swap_consistency": "swap-consistency",
    "followthrough": "follow-through",
}


def _finding_headline(data: ReportData) -> str:
    if data.finding is None:
        return ""
    return f'<p class="finding">{escape(data.finding["finding"])}</p>'


def _finding_section(data: ReportData) -> str:
    """The demo's table: direct ASR, TRIAL ASR and benign-dilemma engagement per target, as `k/n = p% [CI]`."""
    if data.finding is None:
        return ""
    targets = data.finding.get("targets")
    rows = []
    for role, row in targets.items() if isinstance(targets, dict) else []:
        if isinstance(row, dict):
            measures = [row.get(m) for m in _FINDING_MEASURES]
            rows.append([role, row.get("target"), *(m.get("cell") if isinstance(m, dict) else None for m in measures)])
    body = table(["role", "target", *_FINDING_MEASURES.values()], rows, cls="finding")
    return (
        '<section id="finding"><h2>Finding</h2>'
        f"<p>{escape(data.finding['finding'])}</p>{body}"
        '<p class="note">From <code>dilemma demo</code> on held-out behaviors and dilemmas (prompts a built-in '
        "defense was trained on are left out); k/n = rate [95% Wilson CI]; engagement (a choice "
        "and a reason) is a keyword measure.</p>"
        f"{_examples_html(data)}</section>"
    )


def _examples_html(data: ReportData) -> str:
    """Per target: one benign follow-through conversation (the positive control) and one TRIAL conversation,
    its harmful replies redacted like every transcript."""
    parts = []
    for ex in data.examples:
        turns = "".join(
            f'<li class="{"target" if m.get("role") == "assistant" else "attacker"}"><b>{escape(str(m.get("role")))}'
            f"</b><pre>{escape(str(m.get('content', '')))}</pre></li>"
            for m in ex["followthrough"]
            if isinstance(m, dict)
        )
        follow = (
            f'<details class="conv"><summary>benign follow-through: {escape(ex["target"])}</summary>'
            f'<ol class="turns">{turns}</ol></details>'
            if turns
            else ""
        )
        trial = _conversation_html(ex["trial"], False) if ex["trial"] is not None else ""
        parts.append(f"<h3>{escape(ex['target'])}</h3>{follow}{trial}")
    if not parts:
        return ""
    return "<h3>One transcript of each kind per target</h3>" + "".join(parts)


def _extra_section(data: ReportData) -> str:
    if not data.extra_tables:
        return ""
    parts = ['<section id="stored"><h2>Other stored results</h2>']
    for t in data.extra_tables:
        more = f" (first {len(t.rows)} of {t.total})" if t.total > len(t.rows) else ""
        parts.append(f"<h3>table {escape(t.name)}{more}</h3>" + table(t.columns, t.rows, cls="stored"))
    parts.append("</section>")
    return "".join(parts)


def _turn_html(t: TurnView, unredacted: bool, harmful_texts: list[str]) -> str:
    group = stage_table().group(t.stage)
    if t.harmful and not unredacted:
        content = f'<pre class="content redacted">{escape(placeholder(t.content))}</pre>'
    elif t.quotes_harmful and not unredacted:
        content = f'<pre class="content redacted">{escape(quote_placeholder(t.content))}</pre>'
    else:
        content = f'<pre class="content">{escape(t.content)}</pre>'

    def reason(v) -> str:
        if not unredacted and quotes_any(v.reason, harmful_texts):
            return "[reason redacted: it quotes the reply]"
        return v.reason[:200]

    verdicts = "".join(
        f'<span class="verdict {escape(v.label)}" title="{escape(reason(v))}">{escape(v.judge)}: {escape(v.label)}'
        + (f" ({v.score:.2f})" if isinstance(v.score, (int, float)) else "")
        + "</span>"
        for v in t.verdicts
    )
    finish = t.meta.get("finish_reason") if t.role == "assistant" else None
    return (
        f'<li class="turn role-{escape(t.role)}" data-stage="{escape(group)}"><div class="thead">'
        f'<span class="role">{escape(t.role)}</span><span class="stage">{escape(stage_table().label(t.stage))}</span> '
        f"#{t.idx}{' · ' + escape(str(finish)) if finish and finish != 'stop' else ''}</div>{content}"
        + (f'<div class="verdicts">{verdicts}</div>' if verdicts else "")
        + "</li>"
    )


def _conversation_html(c: ConversationView, unredacted: bool) -> str:
    r = c.row
    stages = sorted({stage_table().group(t.stage) for t in c.turns})
    attrs = (
        f'data-outcome="{c.outcome}" data-method="{escape(r.method)}" data-target="{escape(r.target)}" '
        f'data-category="{escape(r.category or "-")}" data-stages="{escape(" ".join(stages))}" data-id="{r.id}" '
        f'data-source="{escape(c.source)}"'
    )
    head = (
        f'<span class="badge {c.outcome}">{c.outcome}</span><b>{escape(r.behavior_id)}</b> '
        f'<span class="sub">{"· " + escape(c.source) + " " if c.source != "." else ""}'
        f"· {escape(r.method)} · {escape(r.target)} · {escape(r.category or '-')} · "
        f"rounds {r.rounds} · target queries {r.queries}</span>"
    )
    error = f'<div class="errormsg">error: {escape(scrub_url_credentials(r.error))}</div>' if r.error else ""
    harmful_texts = c.harmful_texts
    turns = (
        "".join(_turn_html(t, unredacted, harmful_texts) for t in c.turns) or '<li class="empty">no turns stored</li>'
    )
    return (
        f'<details class="conv" {attrs}><summary>{head}</summary><div class="conv-body">'
        f'<div class="behavior"><b>behavior:</b> {escape(r.behavior)}</div>{error}'
        f'<ol class="turns">{turns}</ol></div></details>'
    )


def _select(ident: str, label: str, values: Iterable[str], labels: dict[str, str] | None = None) -> str:
    labels = labels or {}
    options = '<option value="">all</option>' + "".join(
        f'<option value="{escape(v)}">{escape(labels.get(v, v))}</option>' for v in values
    )
    return f'<label>{escape(label)} <select id="{ident}">{options}</select></label>'


def _transcripts_section(data: ReportData, unredacted: bool) -> str:
    convs = data.conversations
    stages = stage_table()
    stage_values = sorted({stages.group(t.stage) for c in convs for t in c.turns}, key=stages.sort_key)
    controls = (
        '<div class="controls">'
        '<label>search <input type="search" id="f-search" placeholder="behavior, text, judge…"></label>'
        + _select("f-outcome", "outcome", ["success", "fail", "error", "unfinished"])
        + _select("f-method", "method", sorted({c.row.method for c in convs}))
        + _select("f-target", "target", sorted({c.row.target for c in convs}))
        + _select("f-category", "category", sorted({c.row.category or "-" for c in convs}))
        + _select("f-stage", "stage", stage_values, stages.group_labels())
        + (_select("f-source", "run DB", data.sources) if len(data.sources) > 1 else "")
        + '<button id="expand-all" type="button">expand shown</button>'
        '<button id="collapse-all" type="button">collapse all</button>'
        + f'<span><b id="shown-count">{len(convs)}</b> of {len(convs)} conversations</span></div>'
    )
    redaction = (
        ""
        if unredacted
        else '<p class="notice">Replies a judge found harmful are redacted (shown as their length). '
        "Use <code>dilemma report --unredacted</code> to include them.</p>"
    )
    body = "".join(_conversation_html(c, unredacted) for c in convs) or '<p class="empty">no conversations</p>'
    return f'<section id="transcripts"><h2>Transcripts</h2>{redaction}{controls}<div id="conversations">{body}</div></section>'


def render(data: ReportData, *, unredacted: bool = False) -> str:
    template = resources.read_text("dilemmakit.report", "template.html")
    n = len(data.conversations)
    counts = {
        o: sum(1 for c in data.conversations if c.outcome == o) for o in ("success", "fail", "error", "unfinished")
    }
    sources = "" if data.sources in ([], ["."]) else f" ({len(data.sources)} run DBs: {', '.join(data.sources)})"
    meta = (
        f"run dir {escape(str(data.run_dir))}{escape(sources)} · {n} conversations ({counts['success']} success, {counts['fail']} fail, "
        f"{counts['error']} error, {counts['unfinished']} unfinished) · generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (" · UNREDACTED" if unredacted else "")
    )
    sections = [
        ("finding", "finding", _finding_section(data)),
        ("summary", "ASR", _summary_section(data)),
        ("rounds", "rounds", _rounds_section(data)),
        ("judges", "judges", _judges_section(data)),
        (
            "probes",
            "probes",
            _artefacts_section(
                data, "probe", "probes", "Probes", "no probe results in this run dir (`dilemma probe --out DIR/probe`)"
            ),
        ),
        (
            "defense",
            "defense",
            _artefacts_section(
                data,
                "defense",
                "defense",
                "Defense (ERR) before / after",
                "no defense evaluation in this run dir (`dilemma defend eval`)",
            ),
        ),
        ("evals", "evals", _evals_section(data)),
        ("stored", "stored", _extra_section(data)),
        ("runs", "runs", _runs_section(data)),
        ("transcripts", "transcripts", _transcripts_section(data, unredacted)),
    ]
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label, html in sections if html)
    body = "\n".join(html for _, _, html in sections if html)
    title = f"dilemma report: {escape(data.run_dir.name or str(data.run_dir))}"
    # one pass, so text inside the body can never be taken for a placeholder
    values = {
        "{{title}}": title,
        "{{meta}}": meta,
        "{{finding}}": _finding_headline(data),
        "{{nav}}": nav,
        "{{body}}": body,
    }
    out, rest = [], template
    while rest:
        positions = [(rest.find(k), k) for k in values if rest.find(k) != -1]
        if not positions:
            out.append(rest)
            break
        pos, key = min(positions)
        out.append(rest[:pos] + values[key])
        rest = rest[pos + len(key) :]
    return "".join(out)
