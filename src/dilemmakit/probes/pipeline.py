"""`dilemma probe` end to end: build the sets (with controls), capture (resumable), analyse, write probe.json + plots."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.loading import defense_refs, load_weights, weights_identity, weights_source
from dilemmakit.models.spec import parse_spec
from dilemmakit.parallel import process_state
from dilemmakit.probes import plots
from dilemmakit.probes.capture import POOLINGS, ActivationStore, ResidualReader, capture
from dilemmakit.probes.linear import (
    THRESHOLD,
    assign_folds,
    crossfit_layer,
    crossfit_scores,
    dissociation_gap,
    harm_specific_excess,
    projection,
    refusal_direction,
    relative_projection,
)
from dilemmakit.probes.prompt_sets import PAIRED, SET_LABELS, WRAPPER_LABELS, WRAPPERS, build_sets
from dilemmakit.probes.trajectory import (
    StoredConversation,
    default_layers,
    load_conversations,
    mean_by_turn,
    trajectories,
)
from dilemmakit.progress import progress_bar

PARTS = ("probe", "direction", "lens", "transfer", "trajectory")
BOOTSTRAP_RESAMPLES = 2000


class ProbeConfig(Config):
    model: str = option(help="Local model spec: embedded | hf:<path>[?dtype=..&device=..]")
    out: Path = option(help="Output dir: activations/, probe.json, plots, summary.txt")
    limit: int | None = option(None, "Requests per set (a seeded sample; default: all)")
    parts: tuple[str, ...] = option(PARTS, f"Analyses to run: {','.join(PARTS)}", listed=True)
    harmful: str = option(
        PAIRED, "D_harm: jbb (JBB's 100, matched to --benign jbb), arditi (refusal_direction), harmbench|... or a file"
    )
    benign: str = option(
        PAIRED, "D_benign: jbb (JBB's topic-matched benign twins), arditi (Alpaca via refusal_direction) or a file"
    )
    controls: bool = option(True, "Neutral-wrapper control sets and the gap's excess over them (--no-controls skips)")
    run_dir: Path | None = option(None, "Run dir of `dilemma attack` for multi-turn trajectories")
    trajectory_layers: list[int] | None = option(
        None, "Trajectory layers, e.g. 5,11,22 (default: paper's, rescaled)", flag="layers", listed=True
    )
    successful_only: bool = option(False, "Trajectories of jailbroken conversations only")
    max_conversations: int = option(20, "Trajectories: at most N conversations")
    pool: str = option(
        "last", "last (last prompt token, paper) | act (the request's last token) | mean (prompt tokens)"
    )
    batch_size: int = option(8, "Prompts per forward pass (and per shard)")
    folds: int = option(5, "Cross-fitting folds of the held-out evaluation")
    refits: int = option(10, "Probe refits on other fold splits behind the control's CI (1: request bootstrap only)")
    l2: float = option(1e-2, "L2 penalty of the logistic probe (standardised features)")
    framework: str = option("utilitarian", "Dilemma framing of the TRIAL sets")
    seed: int = option(0, "Seed: sampling of --limit, scenario frames, folds")
    fresh: bool = option(False, "Discard stored activations in --out and capture again")
    plots: bool = option(True, "Draw the PNG plots (--no-plots skips them)")

    def check(self) -> None:
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise UserError(f"unknown --parts {', '.join(sorted(unknown))}: choose from {','.join(PARTS)}")
        if "trajectory" in self.parts and self.run_dir is None and self.parts != PARTS:
            raise UserError("--parts trajectory needs --run-dir (a run dir written by `dilemma attack`)")
        if self.folds < 2:
            raise UserError("--folds must be at least 2")
        if self.refits < 1:
            raise UserError("--refits must be at least 1")
        if self.pool not in POOLINGS:
            raise UserError(f"unknown --pool {self.pool!r}: use {'|'.join(POOLINGS)}")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.run_dir is not None and not (Path(self.run_dir) / "dilemma.sqlite").exists():
            raise UserError(
                f"no run database in {self.run_dir}: run `dilemma attack --run-dir {self.run_dir} ...` first"
            )

    @property
    def wants_trajectory(self) -> bool:
        return "trajectory" in self.parts and self.run_dir is not None


def open_reader(spec_text: str, device: str | None) -> ResidualReader:
    """A reader over a local model (with its defense): tokenizer and config now, the weights when first needed."""
    spec = parse_spec(spec_text)
    if not spec.is_local:
        raise UserError("probes read hidden states, so they need local weights: use 'embedded' or 'hf:<path>'")
    source = weights_source(spec)
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {spec_text!r}: {first}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"model {spec_text!r} has no chat template: use an instruct/chat model")
    return ResidualReader(tokenizer, config, lambda: load_weights(spec, device=device))


def describe_weights(spec_text: str) -> dict:
    """What was probed: the spec's defense (and those it folds in first), and the layers it cannot change.

    Adapters wrap blocks `start_layer ..`, so layers 0..start_layer (hidden_states indices) equal the
    undefended model's: the curves there are the base model's by construction.
    """
    from dilemmakit.defense.config import DefenseConfig
    from dilemmakit.defense.loading import resolve_defense

    chain = defense_refs(spec_text)  # the named one first, then those it folds in
    if not chain:
        return {"spec": spec_text, "defense": None}
    ref = chain[0]
    configs = [DefenseConfig.load(resolve_defense(r)) for r in chain]
    config = configs[0]
    starts = [c.start_layer for c in configs]
    return {
        "spec": spec_text,
        "defense": ref,
        "path": str(resolve_defense(ref)),
        "gated": not config.static_gate,
        "detection_layer": None if config.static_gate else config.detection_layer,
        "start_layer": config.start_layer,
        "requires": list(config.requires),
        "same_as_base_through_layer": min(starts),
    }


def weights_sentence(weights: dict) -> str:
    if not weights.get("defense"):
        return f"weights: {weights['spec']}, no defense"
    kind = (
        f"harm-gated LoRA from block {weights['start_layer']}, gate reading layer {weights['detection_layer']}"
        if weights["gated"]
        else f"static LoRA from block {weights['start_layer']}"
    )
    requires = f"; {', '.join(weights['requires'])} merged in first" if weights["requires"] else ""
    return (
        f"weights: {weights['spec']} probed WITH defense {weights['defense']!r} ({kind}{requires}); "
        f"layers 0-{weights['same_as_base_through_layer']} equal the undefended model's"
    )


def analyse(
    store: ActivationStore,
    manifest: dict,
    sets_pairs: dict[str, np.ndarray],
    config: ProbeConfig,
    progress: Progress | None = None,
    *,
    paired: bool = False,
) -> tuple[dict, np.ndarray]:
    """All per-layer numbers from the stored activations, one layer in memory at a time.

    `sets_pairs[name][i]` is the plain request prompt i of a wrapped set wraps; with `paired` the harmful
    and benign requests are matched twins and share their folds. Returns (result sections, refusal
    directions [L+1, d]).
    """
    n_layers = manifest["n_layers"]
    key = config.pool
    names = list(sets_pairs)
    wrappers = [w for w in WRAPPERS if f"{w}_h" in sets_pairs]

    def fold_sets(seed: int) -> dict[str, np.ndarray]:
        fold_h = assign_folds(len(sets_pairs["harm"]), config.folds, seed)
        fold_b = fold_h if paired else assign_folds(len(sets_pairs["benign"]), config.folds, seed + 1)
        out = {"harm": fold_h, "benign": fold_b}
        for w in wrappers:
            out[f"{w}_h"] = fold_h[sets_pairs[f"{w}_h"]]
            out[f"{w}_b"] = fold_b[sets_pairs[f"{w}_b"]]
        return out

    folds = fold_sets(config.seed)
    controlled = "neutral" in wrappers and "probe" in config.parts
    # The control's CI refits the plain probe on other fold splits: the wrapped sets' HDRs move with the refit.
    refit_folds = [folds] + [fold_sets(config.seed + 1000 * r) for r in range(1, config.refits if controlled else 1)]
    flagged = ("trial_h", "neutral_h", "trial_b", "neutral_b")
    hdr: dict[str, list[float]] = {n: [] for n in names}
    rho_mean: dict[str, list[float]] = {n: [] for n in names}
    rho_std: dict[str, list[float]] = {n: [] for n in names}
    rho_rel: dict[str, list[float]] = {n: [] for n in names}
    accuracy, diff_norm = [], []
    plain_auroc: dict[str, list[float]] = {"plain": [], **{w: [] for w in wrappers}}
    inside_acc: dict[str, list[float]] = {w: [] for w in wrappers}
    inside_auroc: dict[str, list[float]] = {w: [] for w in wrappers}
    flags: dict[str, list[list[np.ndarray]]] = {n: [[] for _ in refit_folds] for n in flagged}  # [set][refit][layer]
    directions = np.zeros((n_layers, manifest["hidden_size"]))
    layer_probes = []
    want_probe = any(p in config.parts for p in ("probe", "transfer"))
    task = progress.add_task("analysing layers", total=n_layers) if progress else None
    for layer in range(n_layers):
        feats = {n: store.read(n, key, layer) for n in names}
        if want_probe:
            res = crossfit_layer(feats, folds, l2=config.l2)
            layer_probes.append(res.probes)
            for n in names:
                hdr[n].append(res.hdr(n))
            accuracy.append(res.accuracy())
            if controlled:
                for k, fold_k in enumerate(refit_folds):
                    res_k = res if k == 0 else crossfit_layer(feats, fold_k, l2=config.l2)
                    for n in flagged:
                        flags[n][k].append(_by_request(res_k.scores[n] > THRESHOLD, sets_pairs[n]))
            plain_auroc["plain"].append(res.auroc())
            for w in wrappers:
                # Does the plain-prompt probe still rank wrapped harm above wrapped benign?
                plain_auroc[w].append(res.auroc(f"{w}_h", f"{w}_b"))
                # Is harm still linearly readable inside the wrapper? A probe trained on the wrapped sets alone.
                inside = crossfit_layer(
                    {"harm": feats[f"{w}_h"], "benign": feats[f"{w}_b"]},
                    {"harm": folds[f"{w}_h"], "benign": folds[f"{w}_b"]},
                    l2=config.l2,
                )
                inside_acc[w].append(inside.accuracy())
                inside_auroc[w].append(inside.auroc())
        r = refusal_direction(feats["harm"], feats["benign"])
        directions[layer] = r
        diff_norm.append(float(np.linalg.norm(feats["harm"].mean(0) - feats["benign"].mean(0))))
        rhos = {n: projection(feats[n], r) for n in names}
        mh, mb = float(rhos["harm"].mean()), float(rhos["benign"].mean())
        for n in names:
            rho_mean[n].append(float(rhos[n].mean()))
            rho_std[n].append(float(rhos[n].std()))
            rho_rel[n].append(float(relative_projection(rhos[n], mh, mb).mean()))
        if progress is not None and task is not None:
            progress.advance(task)
    out: dict = {}
    if "probe" in config.parts:
        gap, peak, value = dissociation_gap(hdr["harm"], hdr["trial_h"])
        out["probe"] = {
            "hdr": hdr,
            "n": {n: int(len(sets_pairs[n])) for n in names},
            "accuracy": accuracy,
            "auroc": plain_auroc["plain"],
            "gap": gap.tolist(),
            "peak_layer": peak,
            "peak_gap": value,
            "trial_separability": inside_acc["trial"],
            "plain_probe_auroc": {w: plain_auroc[w] for w in wrappers},
            "within_wrapper": {w: {"accuracy": inside_acc[w], "auroc": inside_auroc[w]} for w in wrappers},
            "paired": paired,
            "folds": config.folds,
            "l2": config.l2,
            "threshold": THRESHOLD,
        }
        if controlled:
            stacked = {n: np.stack([np.stack(layers, axis=1) for layers in flags[n]]) for n in flagged}  # [R, n, L]
            excess = harm_specific_excess(
                stacked["trial_h"],
                stacked["neutral_h"],
                stacked["trial_b"],
                stacked["neutral_b"],
                paired=paired,
                resamples=BOOTSTRAP_RESAMPLES,
                seed=config.seed,
            )
            out["probe"]["control"] = {
                "wrapper": "neutral",
                "gap_neutral": (np.asarray(hdr["harm"]) - np.asarray(hdr["neutral_h"])).tolist(),
                "statistic": "harm-specific excess = (HDR neutral-H - HDR TRIAL-H) - (HDR neutral-B - HDR TRIAL-B)",
                "excess": excess.value.tolist(),
                "excess_ci": [excess.low.tolist(), excess.high.tolist()],
                "excess_harmful": excess.harmful.tolist(),
                "excess_benign": excess.benign.tolist(),
                "excess_refit_range": [excess.refit_low.tolist(), excess.refit_high.tolist()],
                "ci_level": 0.95,
                "ci_method": ci_method(excess.refits, config.folds, paired),
                "refits": excess.refits,
                "paired": paired,
                "n": excess.n,
                "exceeds_at": excess.exceeds(),
            }
    if "direction" in config.parts or config.wants_trajectory:
        out["refusal_direction"] = {
            "rho_mean": rho_mean,
            "rho_std": rho_std,
            "rho_relative": rho_rel,
            "mean_difference_norm": diff_norm,
        }
    if "lens" in config.parts:
        lens = {n: store.read(n, "lens") for n in names}  # [n, L+1]
        out["logit_lens"] = {
            "tokens": manifest["lens_tokens"],
            "p_refuse": {n: lens[n].mean(0).tolist() for n in names},
            "p_refuse_median": {n: np.median(lens[n], axis=0).tolist() for n in names},
        }
    if "transfer" in config.parts:
        acc = np.zeros((n_layers, n_layers))
        trial = np.zeros((n_layers, n_layers))
        task = progress.add_task("cross-layer transfer", total=n_layers) if progress else None
        for j in range(n_layers):
            feats = {n: store.read(n, key, j) for n in ("harm", "benign", "trial_h")}
            for i in range(n_layers):
                s = {n: crossfit_scores(layer_probes[i], feats[n], folds[n]) for n in feats}
                acc[i, j] = 0.5 * (np.mean(s["harm"] > 0.5) + 1 - np.mean(s["benign"] > 0.5))
                trial[i, j] = np.mean(s["trial_h"] > 0.5)
            if progress is not None and task is not None:
                progress.advance(task)
        out["transfer"] = {
            "rows": "train layer i",
            "columns": "eval layer j",
            "accuracy": acc.tolist(),
            "hdr_trial_h": trial.tolist(),
        }
    return out, directions


def _by_request(flags: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A wrapped set's per-prompt flags reordered so row i belongs to plain request i."""
    out = np.zeros(int(pairs.max()) + 1, dtype=bool)
    out[pairs] = flags
    return out


def ci_method(refits: int, folds: int, paired: bool) -> str:
    unit = "matched pairs, each harmful request with its benign twin," if paired else "harmful and benign requests,"
    refit = (
        f"the plain probe refitted on {refits} {folds}-fold splits, " if refits > 1 else "the fold probes held fixed, "
    )
    return (
        f"percentile interval pooling {refit}each with a bootstrap over {unit} "
        f"{BOOTSTRAP_RESAMPLES} resamples in all; pointwise per layer"
    )


def _layer_ranges(layers: list[int]) -> str:
    """[2, 3, 4, 7] -> '2-4, 7'."""
    spans: list[list[int]] = []
    for layer in layers:
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def control_sentence(control: dict, n_layers: int) -> str:
    """ONE sentence: does the dissociation gap exceed its neutral-wrapper control beyond the benign twins' shift,
    where, and by how much."""
    excess = np.asarray(control["excess"])
    low, high = (np.asarray(c) for c in control["excess_ci"])
    where = control["exceeds_at"]
    refits = control.get("refits", 1)
    basis = (
        f"{refits} probe refits and a bootstrap of n={control['n']} {'pairs' if control.get('paired') else 'requests'}"
    )
    if where:
        best = max(where, key=lambda i: excess[i])
        return (
            f"The dissociation gap exceeds its neutral-wrapper control at {len(where)} of {n_layers} layers "
            f"({_layer_ranges(where)}), by a harm-specific excess (net of the benign twins' shift) of up to "
            f"{excess[best]:+.2f} at layer {best} (95% CI {low[best]:+.2f} to {high[best]:+.2f} over {basis}; "
            f"pointwise CIs)."
        )
    best = int(np.argmax(excess))
    return (
        f"The dissociation gap does not exceed its neutral-wrapper control at any layer once the benign twins' "
        f"shift is netted out (largest harm-specific excess {excess[best]:+.2f} at layer {best}, 95% CI "
        f"{low[best]:+.2f} to {high[best]:+.2f} over {basis}), so no part of the gap is specific to harm inside the dilemma."
    )


def summary_text(result: dict) -> str:
    names = list(result["sizes"])
    lines = [
        f"dilemma probe: {result['model']}",
        *([weights_sentence(result["weights"])] if "weights" in result else []),
        "prompts per set: " + ", ".join(f"{SET_LABELS[n]} {k}" for n, k in result["sizes"].items()),
        f"layers: 0..{result['n_layers'] - 1} (0 = embeddings), pooling: {result['pooling']}",
    ]
    probe = result.get("probe")
    if probe:
        p = probe["peak_layer"]
        hdr = probe["hdr"]
        best = int(np.argmax(probe["accuracy"]))
        at_peak = ", ".join(f"{SET_LABELS[n]} {hdr[n][p]:.2f}" for n in names)
        lines += [
            f"Safety dissociation gap peaks at layer {p}: {probe['peak_gap']:+.3f} (HDR {at_peak})",
            f"probe held-out accuracy: best {probe['accuracy'][best]:.2f} at layer {best}; "
            f"{probe['accuracy'][p]:.2f} at the peak layer",
            "gap per layer: " + " ".join(f"{g:+.2f}" for g in probe["gap"]),
        ]
        control = probe.get("control")
        if control:
            lines.append(
                "harm-specific excess over the neutral control per layer, (HDR neutral-H - TRIAL-H) - "
                "(HDR neutral-B - TRIAL-B): " + " ".join(f"{g:+.2f}" for g in control["excess"])
            )
            lines.append(control_sentence(control, result["n_layers"]))
            lines.append(f"its 95% CI: {control['ci_method']}")
        for w, values in probe["plain_probe_auroc"].items():
            lines.append(
                f"plain-prompt probe AUROC, {WRAPPER_LABELS[w]}-H vs {WRAPPER_LABELS[w]}-B: {values[p]:.2f} at the "
                f"peak layer, best {np.nanmax(values):.2f} (plain harm vs benign: {probe['auroc'][p]:.2f}; 0.5 = chance)"
            )
        for w, inside in probe["within_wrapper"].items():
            lines.append(
                f"{WRAPPER_LABELS[w]}-H vs {WRAPPER_LABELS[w]}-B separable by a probe trained inside the "
                f"{WRAPPER_LABELS[w]} wrapper (cross-fitted): AUROC {inside['auroc'][p]:.2f} at the peak layer, "
                f"best {np.nanmax(inside['auroc']):.2f}"
            )
        if probe["peak_gap"] <= 0.05:
            lines.append("No dissociation: the probe flags D_TRIAL-H about as often as D_harm at every layer.")
        elif hdr["trial_b"][p] >= hdr["trial_h"][p] - 0.05:
            lines.append(
                "Caution: at the peak D_TRIAL-B scores like D_TRIAL-H, so the plain-prompt probe may be "
                "reacting to the wrapper format rather than to harm; see the control and separability lines."
            )
    lens = result.get("logit_lens")
    if lens:
        pr = lens["p_refuse"]
        last = result["n_layers"] - 1
        lines.append(
            f"logit lens P(refuse) at the last layer: D_harm {pr['harm'][last]:.2e}, "
            f"D_TRIAL-H {pr['trial_h'][last]:.2e}, D_benign {pr['benign'][last]:.2e}"
        )
    traj = result.get("trajectories")
    if traj:
        lines.append(f"trajectories: {len(traj['conversations'])} conversations at layers {traj['layers']}")
    lines.append("files: " + ", ".join(result["files"]))
    return "\n".join(lines) + "\n"


def headline(result: dict) -> dict:
    probe = result.get("probe") or {}
    p = probe.get("peak_layer")
    control = probe.get("control")
    head = {
        "model": result["model"],
        "weights": result.get("weights"),
        "sizes": result["sizes"],
        "n_layers": result["n_layers"],
        "pooling": result["pooling"],
        "peak_layer": p,
        "peak_gap": probe.get("peak_gap"),
        "hdr_at_peak": {n: probe["hdr"][n][p] for n in probe["hdr"]} if probe else None,
        "probe_accuracy_at_peak": probe["accuracy"][p] if probe else None,
        "probe_auroc_at_peak": probe["auroc"][p] if probe else None,
        "trial_separability_at_peak": probe["trial_separability"][p] if probe else None,
        "max_probe_accuracy": max(probe["accuracy"]) if probe else None,
        "plain_probe_auroc_at_peak": {w: v[p] for w, v in probe["plain_probe_auroc"].items()} if probe else None,
        "within_wrapper_auroc_at_peak": (
            {w: v["auroc"][p] for w, v in probe["within_wrapper"].items()} if probe else None
        ),
        "gap": probe.get("gap"),
        "control": None,
        "out": result["out"],
        "files": result["files"],
        "seconds": result["seconds"],
    }
    if control:
        excess = control["excess"]
        best = int(np.argmax(excess))
        head["control"] = {
            "exceeds_at": control["exceeds_at"],
            "max_excess": excess[best],
            "max_excess_layer": best,
            "max_excess_ci": [control["excess_ci"][0][best], control["excess_ci"][1][best]],
            "n": control["n"],
            "ci_method": control["ci_method"],
            "sentence": control_sentence(control, result["n_layers"]),
        }
    return head


def run_probe(config: ProbeConfig, *, console: Console | None = None, show_progress: bool = True) -> dict | None:
    """Run the whole analysis; returns the result dict (None on non-main accelerate processes)."""
    config.check()
    started = time.monotonic()
    out = Path(config.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc.strerror}") from None
    sets = build_sets(
        harmful=config.harmful,
        benign=config.benign,
        limit=config.limit,
        seed=config.seed,
        framework=config.framework,
        controls=config.controls,
    )
    names = list(sets.sets)
    conversations: list[StoredConversation] = []
    if config.wants_trajectory and config.run_dir is not None:
        conversations = load_conversations(
            Path(config.run_dir), successful_only=config.successful_only, limit=config.max_conversations
        )
    state = process_state()
    main = state is None or state.is_main_process
    reader = open_reader(config.model, str(state.device) if state is not None else None)
    store = ActivationStore(out / "activations")
    key: dict[str, Any] = {"model": config.model, "sets": {n: sets.fingerprint(n) for n in names}}
    key.update(weights_identity(config.model))  # a defense retrained into the same directory: new activations
    progress = progress_bar(console=console, show=show_progress and main)
    with progress:
        task = progress.add_task("capturing residual stream", total=None)
        manifest = capture(
            reader,
            {n: [p.text for p in sets.sets[n]] for n in names},
            store,
            key=key,
            act_ends={n: [p.act_end for p in sets.sets[n]] for n in names},
            batch_size=config.batch_size,
            pooling=config.pool,
            fresh=config.fresh,
            state=state,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
        if not main:
            return None
        pairs = {n: np.asarray([p.pair for p in sets.sets[n]]) for n in names}
        sections, directions = analyse(store, manifest, pairs, config, progress, paired=sets.paired)
        if config.wants_trajectory:
            n_blocks = manifest["n_layers"] - 1
            layers = config.trajectory_layers or default_layers(n_blocks)
            bad = [layer for layer in layers if not 0 <= layer <= n_blocks]
            if bad:
                raise UserError(f"--layers {bad} out of range: this model has layers 0..{n_blocks}")
            total_turns = sum(len(c.stages) for c in conversations)
            task = progress.add_task("trajectories", total=total_turns)
            items = trajectories(
                reader, conversations, directions, layers, progress=lambda done: progress.update(task, completed=done)
            )
            sections["trajectories"] = {
                "layers": layers,
                "conversations": items,
                "mean_by_turn": mean_by_turn(items, layers),
                "successful_only": config.successful_only,
            }
    np.save(out / "refusal_directions.npy", directions.astype(np.float32))
    result = {
        "model": config.model,
        "weights": describe_weights(config.model),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_layers": manifest["n_layers"],
        "layers": list(range(manifest["n_layers"])),
        "hidden_size": manifest["hidden_size"],
        "pooling": config.pool,
        "sizes": sets.sizes(),
        "settings": {
            "harmful": config.harmful,
            "benign": config.benign,
            "limit": config.limit,
            "seed": config.seed,
            "framework": config.framework,
            "paired": sets.paired,
            "controls": config.controls,
            "folds": config.folds,
            "l2": config.l2,
            "parts": list(config.parts),
            "run_dir": str(config.run_dir) if config.run_dir else None,
        },
        "out": str(out),
        **sections,
    }
    files = ["probe.json", "summary.txt", "refusal_directions.npy"]
    if config.plots:
        drawers = [
            ("probe", plots.plot_hdr, "hdr.png"),
            ("probe", plots.plot_controls, "controls.png"),
            ("refusal_direction", plots.plot_projection, "projection.png"),
            ("logit_lens", plots.plot_logit_lens, "logit_lens.png"),
            ("transfer", plots.plot_transfer, "transfer.png"),
            ("trajectories", plots.plot_trajectories, "trajectories.png"),
        ]
        for section, draw, name in drawers:
            if section in result:
                draw(result, out / name)
                files.append(name)
    result["files"] = files
    result["seconds"] = round(time.monotonic() - started, 1)
    (out / "probe.json").write_text(json.dumps(result, indent=1))
    (out / "summary.txt").write_text(summary_text(result))
    return result
