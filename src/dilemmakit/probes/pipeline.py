"""`dilemma probe` end to end: build the sets (with controls), capture (resumable), analyse, write probe.json + plots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from dilemmakit.behaviors import behaviors_help
from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.loading import defense_refs, load_weights, weights_identity, weights_source
from dilemmakit.models.spec import parse_spec
from dilemmakit.parallel import process_state
from dilemmakit.probes import plots
from dilemmakit.probes.analyses import (
    Analyses,
    ControlAnalysis,
    DirectionAnalysis,
    LensAnalysis,
    ProbeAnalysis,
    ProbeResult,
    TrajectoryAnalysis,
    TransferAnalysis,
    WrapperSeparability,
)
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
    limit: int | None = option(None, "Requests per set (a seeded sample; default: all)", ge=2)
    parts: tuple[str, ...] = option(PARTS, f"Analyses to run: {','.join(PARTS)}", listed=True)
    harmful: str = option(
        PAIRED,
        f"D_harm: jbb (JBB's 100, matched to --benign jbb), arditi (refusal_direction), "
        f"{behaviors_help().replace('jbb|', '')} or a file",
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
    batch_size: int = option(8, "Prompts per forward pass (and per shard)", ge=1)
    folds: int = option(5, "Cross-fitting folds of the held-out evaluation", ge=2)
    refits: int = option(
        10, "Probe refits on other fold splits behind the control's CI (1: request bootstrap only)", ge=1
    )
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
        if self.pool not in POOLINGS:
            raise UserError(f"unknown --pool {self.pool!r}: use {'|'.join(POOLINGS)}")
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
) -> tuple[Analyses, np.ndarray]:
    """The analyses `config.parts` asks for, from the stored activations, one layer in memory at a time.

    `sets_pairs[name][i]` is the plain request prompt i of a wrapped set wraps; with `paired` the harmful
    and benign requests are matched twins and share their folds. Returns (the analyses, refusal
    directions [L+1, d]).
    """
    n_layers = manifest["n_layers"]
    names = list(sets_pairs)
    wrappers = [w for w in WRAPPERS if f"{w}_h" in sets_pairs]
    folds = _fold_sets(sets_pairs, wrappers, config.folds, config.seed, paired)
    controlled = "neutral" in wrappers and "probe" in config.parts
    # The control's CI refits the plain probe on other fold splits: the wrapped sets' HDRs move with the refit.
    refit_folds = [folds] + [
        _fold_sets(sets_pairs, wrappers, config.folds, config.seed + 1000 * r, paired)
        for r in range(1, config.refits if controlled else 1)
    ]
    want_probe = any(p in config.parts for p in ("probe", "transfer"))
    probe_layers: list[_ProbeLayer] = []
    direction_layers: list[_DirectionLayer] = []
    task = progress.add_task("analysing layers", total=n_layers) if progress else None
    for layer in range(n_layers):
        feats = {n: store.read(n, config.pool, layer) for n in names}
        if want_probe:
            probe_layers.append(
                _probe_layer(feats, sets_pairs, folds, refit_folds if controlled else [], wrappers, config.l2)
            )
        direction_layers.append(_direction_layer(feats))
        if progress is not None and task is not None:
            progress.advance(task)
    analyses = Analyses()
    if "probe" in config.parts:
        analyses.probe = _probe_analysis(probe_layers, sets_pairs, wrappers, config, paired=paired)
    if "direction" in config.parts or config.wants_trajectory:
        analyses.direction = _direction_analysis(direction_layers, names)
    if "lens" in config.parts:
        analyses.lens = _lens_analysis(store, manifest, names)
    if "transfer" in config.parts:
        probes = [p.probes for p in probe_layers]
        analyses.transfer = _transfer_analysis(store, config.pool, n_layers, probes, folds, progress)
    directions = np.zeros((n_layers, manifest["hidden_size"]))
    for layer, d in enumerate(direction_layers):
        directions[layer] = d.direction
    return analyses, directions


def _fold_sets(
    sets_pairs: dict[str, np.ndarray], wrappers: list[str], n_folds: int, seed: int, paired: bool
) -> dict[str, np.ndarray]:
    """Each set's fold per prompt: a wrapped prompt takes its plain request's fold (matched twins share theirs)."""
    fold_h = assign_folds(len(sets_pairs["harm"]), n_folds, seed)
    fold_b = fold_h if paired else assign_folds(len(sets_pairs["benign"]), n_folds, seed + 1)
    out = {"harm": fold_h, "benign": fold_b}
    for w in wrappers:
        out[f"{w}_h"] = fold_h[sets_pairs[f"{w}_h"]]
        out[f"{w}_b"] = fold_b[sets_pairs[f"{w}_b"]]
    return out


CONTROL_SETS = ("trial_h", "neutral_h", "trial_b", "neutral_b")


@dataclass
class _ProbeLayer:
    """One layer's probe numbers."""

    probes: Any  # the fold probes, for the transfer analysis
    hdr: dict[str, float]
    accuracy: float
    auroc: float
    plain_auroc: dict[str, float]  # wrapper -> the plain probe's AUROC on its harmful vs benign prompts
    inside: dict[str, tuple[float, float]]  # wrapper -> (accuracy, AUROC) of a probe trained inside it
    flags: list[dict[str, np.ndarray]]  # per refit: the control sets' per-request flags


def _probe_layer(
    feats: dict[str, np.ndarray],
    sets_pairs: dict[str, np.ndarray],
    folds: dict[str, np.ndarray],
    refit_folds: list[dict[str, np.ndarray]],
    wrappers: list[str],
    l2: float,
) -> _ProbeLayer:
    res = crossfit_layer(feats, folds, l2=l2)
    flags = []
    for k, fold_k in enumerate(refit_folds):
        res_k = res if k == 0 else crossfit_layer(feats, fold_k, l2=l2)
        flags.append({n: _by_request(res_k.scores[n] > THRESHOLD, sets_pairs[n]) for n in CONTROL_SETS})
    inside = {}
    for w in wrappers:
        # Is harm still linearly readable inside the wrapper? A probe trained on the wrapped sets alone.
        within = crossfit_layer(
            {"harm": feats[f"{w}_h"], "benign": feats[f"{w}_b"]},
            {"harm": folds[f"{w}_h"], "benign": folds[f"{w}_b"]},
            l2=l2,
        )
        inside[w] = (within.accuracy(), within.auroc())
    return _ProbeLayer(
        probes=res.probes,
        hdr={n: res.hdr(n) for n in feats},
        accuracy=res.accuracy(),
        auroc=res.auroc(),
        # Does the plain-prompt probe still rank wrapped harm above wrapped benign?
        plain_auroc={w: res.auroc(f"{w}_h", f"{w}_b") for w in wrappers},
        inside=inside,
        flags=flags,
    )


def _probe_analysis(
    layers: list[_ProbeLayer],
    sets_pairs: dict[str, np.ndarray],
    wrappers: list[str],
    config: ProbeConfig,
    *,
    paired: bool,
) -> ProbeAnalysis:
    names = list(sets_pairs)
    hdr = {n: [layer.hdr[n] for layer in layers] for n in names}
    gap, peak, value = dissociation_gap(hdr["harm"], hdr["trial_h"])
    return ProbeAnalysis(
        hdr=hdr,
        n={n: int(len(sets_pairs[n])) for n in names},
        accuracy=[layer.accuracy for layer in layers],
        auroc=[layer.auroc for layer in layers],
        gap=gap.tolist(),
        peak_layer=peak,
        peak_gap=value,
        plain_probe_auroc={w: [layer.plain_auroc[w] for layer in layers] for w in wrappers},
        within_wrapper={
            w: WrapperSeparability(
                accuracy=[layer.inside[w][0] for layer in layers], auroc=[layer.inside[w][1] for layer in layers]
            )
            for w in wrappers
        },
        paired=paired,
        folds=config.folds,
        l2=config.l2,
        threshold=THRESHOLD,
        control=_control_analysis(layers, hdr, config, paired=paired) if layers and layers[0].flags else None,
    )


def _control_analysis(
    layers: list[_ProbeLayer], hdr: dict[str, list[float]], config: ProbeConfig, *, paired: bool
) -> ControlAnalysis:
    refits = len(layers[0].flags)
    stacked = {  # [R, n, L]
        n: np.stack([np.stack([layer.flags[k][n] for layer in layers], axis=1) for k in range(refits)])
        for n in CONTROL_SETS
    }
    excess = harm_specific_excess(
        stacked["trial_h"],
        stacked["neutral_h"],
        stacked["trial_b"],
        stacked["neutral_b"],
        paired=paired,
        resamples=BOOTSTRAP_RESAMPLES,
        seed=config.seed,
    )
    return ControlAnalysis(
        gap_neutral=(np.asarray(hdr["harm"]) - np.asarray(hdr["neutral_h"])).tolist(),
        excess=excess.value.tolist(),
        excess_low=excess.low.tolist(),
        excess_high=excess.high.tolist(),
        excess_harmful=excess.harmful.tolist(),
        excess_benign=excess.benign.tolist(),
        refit_low=excess.refit_low.tolist(),
        refit_high=excess.refit_high.tolist(),
        ci_method=ci_method(excess.refits, config.folds, paired),
        refits=excess.refits,
        paired=paired,
        n=excess.n,
        exceeds_at=excess.exceeds(),
    )


@dataclass
class _DirectionLayer:
    """One layer's refusal direction and each set's projection on it."""

    direction: np.ndarray
    diff_norm: float
    rho_mean: dict[str, float]
    rho_std: dict[str, float]
    rho_relative: dict[str, float]


def _direction_layer(feats: dict[str, np.ndarray]) -> _DirectionLayer:
    r = refusal_direction(feats["harm"], feats["benign"])
    rhos = {n: projection(x, r) for n, x in feats.items()}
    mh, mb = float(rhos["harm"].mean()), float(rhos["benign"].mean())
    return _DirectionLayer(
        direction=r,
        diff_norm=float(np.linalg.norm(feats["harm"].mean(0) - feats["benign"].mean(0))),
        rho_mean={n: float(rho.mean()) for n, rho in rhos.items()},
        rho_std={n: float(rho.std()) for n, rho in rhos.items()},
        rho_relative={n: float(relative_projection(rho, mh, mb).mean()) for n, rho in rhos.items()},
    )


def _direction_analysis(layers: list[_DirectionLayer], names: list[str]) -> DirectionAnalysis:
    return DirectionAnalysis(
        rho_mean={n: [layer.rho_mean[n] for layer in layers] for n in names},
        rho_std={n: [layer.rho_std[n] for layer in layers] for n in names},
        rho_relative={n: [layer.rho_relative[n] for layer in layers] for n in names},
        mean_difference_norm=[layer.diff_norm for layer in layers],
    )


def _lens_analysis(store: ActivationStore, manifest: dict, names: list[str]) -> LensAnalysis:
    lens = {n: store.read(n, "lens") for n in names}  # [n, L+1]
    return LensAnalysis(
        tokens=manifest["lens_tokens"],
        p_refuse={n: lens[n].mean(0).tolist() for n in names},
        p_refuse_median={n: np.median(lens[n], axis=0).tolist() for n in names},
    )


def _transfer_analysis(
    store: ActivationStore,
    pool: str,
    n_layers: int,
    layer_probes: list[Any],
    folds: dict[str, np.ndarray],
    progress: Progress | None,
) -> TransferAnalysis:
    acc = np.zeros((n_layers, n_layers))
    trial = np.zeros((n_layers, n_layers))
    task = progress.add_task("cross-layer transfer", total=n_layers) if progress else None
    for j in range(n_layers):
        feats = {n: store.read(n, pool, j) for n in ("harm", "benign", "trial_h")}
        for i in range(n_layers):
            s = {n: crossfit_scores(layer_probes[i], feats[n], folds[n]) for n in feats}
            acc[i, j] = 0.5 * (np.mean(s["harm"] > 0.5) + 1 - np.mean(s["benign"] > 0.5))
            trial[i, j] = np.mean(s["trial_h"] > 0.5)
        if progress is not None and task is not None:
            progress.advance(task)
    return TransferAnalysis(accuracy=acc.tolist(), hdr_trial_h=trial.tolist())


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


def control_sentence(control: ControlAnalysis, n_layers: int) -> str:
    """ONE sentence: does the dissociation gap exceed its neutral-wrapper control beyond the benign twins' shift,
    where, and by how much."""
    excess = np.asarray(control.excess)
    low, high = np.asarray(control.excess_low), np.asarray(control.excess_high)
    where = control.exceeds_at
    basis = (
        f"{control.refits} probe refits and a bootstrap of n={control.n} {'pairs' if control.paired else 'requests'}"
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


def summary_text(result: ProbeResult) -> str:
    names = list(result.sizes)
    lines = [
        f"dilemma probe: {result.model}",
        *([weights_sentence(result.weights)] if result.weights is not None else []),
        "prompts per set: " + ", ".join(f"{SET_LABELS[n]} {k}" for n, k in result.sizes.items()),
        f"layers: 0..{result.n_layers - 1} (0 = embeddings), pooling: {result.pooling}",
    ]
    probe = result.analyses.probe
    if probe:
        lines += _probe_lines(probe, names, result.n_layers)
    lens = result.analyses.lens
    if lens:
        pr = lens.p_refuse
        last = result.n_layers - 1
        lines.append(
            f"logit lens P(refuse) at the last layer: D_harm {pr['harm'][last]:.2e}, "
            f"D_TRIAL-H {pr['trial_h'][last]:.2e}, D_benign {pr['benign'][last]:.2e}"
        )
    traj = result.analyses.trajectories
    if traj:
        lines.append(f"trajectories: {len(traj.conversations)} conversations at layers {traj.layers}")
    lines.append("files: " + ", ".join(result.files))
    return "\n".join(lines) + "\n"


def _probe_lines(probe: ProbeAnalysis, names: list[str], n_layers: int) -> list[str]:
    p = probe.peak_layer
    hdr = probe.hdr
    best = int(np.argmax(probe.accuracy))
    at_peak = ", ".join(f"{SET_LABELS[n]} {hdr[n][p]:.2f}" for n in names)
    lines = [
        f"Safety dissociation gap peaks at layer {p}: {probe.peak_gap:+.3f} (HDR {at_peak})",
        f"probe held-out accuracy: best {probe.accuracy[best]:.2f} at layer {best}; "
        f"{probe.accuracy[p]:.2f} at the peak layer",
        "gap per layer: " + " ".join(f"{g:+.2f}" for g in probe.gap),
    ]
    control = probe.control
    if control:
        lines.append(
            "harm-specific excess over the neutral control per layer, (HDR neutral-H - TRIAL-H) - "
            "(HDR neutral-B - TRIAL-B): " + " ".join(f"{g:+.2f}" for g in control.excess)
        )
        lines.append(control_sentence(control, n_layers))
        lines.append(f"its 95% CI: {control.ci_method}")
    for w, values in probe.plain_probe_auroc.items():
        lines.append(
            f"plain-prompt probe AUROC, {WRAPPER_LABELS[w]}-H vs {WRAPPER_LABELS[w]}-B: {values[p]:.2f} at the "
            f"peak layer, best {np.nanmax(values):.2f} (plain harm vs benign: {probe.auroc[p]:.2f}; 0.5 = chance)"
        )
    for w, inside in probe.within_wrapper.items():
        lines.append(
            f"{WRAPPER_LABELS[w]}-H vs {WRAPPER_LABELS[w]}-B separable by a probe trained inside the "
            f"{WRAPPER_LABELS[w]} wrapper (cross-fitted): AUROC {inside.auroc[p]:.2f} at the peak layer, "
            f"best {np.nanmax(inside.auroc):.2f}"
        )
    if probe.peak_gap <= 0.05:
        lines.append("No dissociation: the probe flags D_TRIAL-H about as often as D_harm at every layer.")
    elif hdr["trial_b"][p] >= hdr["trial_h"][p] - 0.05:
        lines.append(
            "Caution: at the peak D_TRIAL-B scores like D_TRIAL-H, so the plain-prompt probe may be "
            "reacting to the wrapper format rather than to harm; see the control and separability lines."
        )
    return lines


def headline(result: ProbeResult) -> dict:
    """The --json headline: the numbers at the peak layer and the control's verdict."""
    probe = result.analyses.probe
    p = probe.peak_layer if probe else None
    head: dict[str, Any] = {
        "model": result.model,
        "weights": result.weights,
        "sizes": result.sizes,
        "n_layers": result.n_layers,
        "pooling": result.pooling,
        "peak_layer": p,
        "peak_gap": probe.peak_gap if probe else None,
        "hdr_at_peak": None,
        "probe_accuracy_at_peak": None,
        "probe_auroc_at_peak": None,
        "trial_separability_at_peak": None,
        "max_probe_accuracy": None,
        "plain_probe_auroc_at_peak": None,
        "within_wrapper_auroc_at_peak": None,
        "gap": probe.gap if probe else None,
        "control": None,
        "out": result.out,
        "files": result.files,
        "seconds": result.seconds,
    }
    if probe:
        peak = probe.peak_layer
        head.update(
            hdr_at_peak={n: values[peak] for n, values in probe.hdr.items()},
            probe_accuracy_at_peak=probe.accuracy[peak],
            probe_auroc_at_peak=probe.auroc[peak],
            trial_separability_at_peak=probe.trial_separability[peak],
            max_probe_accuracy=max(probe.accuracy),
            plain_probe_auroc_at_peak={w: v[peak] for w, v in probe.plain_probe_auroc.items()},
            within_wrapper_auroc_at_peak={w: s.auroc[peak] for w, s in probe.within_wrapper.items()},
        )
    control = probe.control if probe else None
    if control:
        best = int(np.argmax(control.excess))
        head["control"] = {
            "exceeds_at": control.exceeds_at,
            "max_excess": control.excess[best],
            "max_excess_layer": best,
            "max_excess_ci": [control.excess_low[best], control.excess_high[best]],
            "n": control.n,
            "ci_method": control.ci_method,
            "sentence": control_sentence(control, result.n_layers),
        }
    return head


def run_probe(config: ProbeConfig, *, console: Console | None = None, show_progress: bool = True) -> ProbeResult | None:
    """Run the whole analysis; returns its result (None on non-main accelerate processes)."""
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
        analyses, directions = analyse(store, manifest, pairs, config, progress, paired=sets.paired)
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
            analyses.trajectories = TrajectoryAnalysis(
                layers=layers,
                conversations=items,
                mean_by_turn=mean_by_turn(items, layers),
                successful_only=config.successful_only,
            )
    np.save(out / "refusal_directions.npy", directions.astype(np.float32))
    result = ProbeResult(
        model=config.model,
        weights=describe_weights(config.model),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        n_layers=manifest["n_layers"],
        hidden_size=manifest["hidden_size"],
        pooling=config.pool,
        sizes=sets.sizes(),
        settings={
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
        out=str(out),
        analyses=analyses,
    )
    files = ["probe.json", "summary.txt", "refusal_directions.npy"]
    if config.plots:
        for name, draw in plots.drawers(analyses):
            draw(result, out / name)
            files.append(name)
    result.files = files
    result.seconds = round(time.monotonic() - started, 1)
    (out / "probe.json").write_text(json.dumps(result.as_json(), indent=1))
    (out / "summary.txt").write_text(summary_text(result))
    return result
