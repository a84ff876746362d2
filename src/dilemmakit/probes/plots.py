"""PNG plots of a probe result, one per analysis that ran. matplotlib with the Agg backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dilemmakit.probes.analyses import Analyses, ProbeResult
from dilemmakit.probes.prompt_sets import SET_LABELS

COLORS = {
    "harm": "#c0392b",
    "benign": "#2e86c1",
    "trial_h": "#e67e22",
    "trial_b": "#7f8c8d",
    "neutral_h": "#27ae60",
    "neutral_b": "#95a5a6",
}
STYLES = {"harm": "-", "benign": "-", "trial_h": "--", "trial_b": "--", "neutral_h": ":", "neutral_b": ":"}
WRAPPER_COLORS = {"trial": "#e67e22", "neutral": "#27ae60"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _set_curves(ax, layers, curves: dict[str, list[float]]):
    for name, values in curves.items():
        ax.plot(layers, values, STYLES[name], color=COLORS[name], marker="o", markersize=3, label=SET_LABELS[name])


def plot_hdr(result: ProbeResult, path: Path) -> Path:
    plt = _pyplot()
    probe = result.analyses.probe
    assert probe is not None
    layers = result.layers
    hdr = probe.hdr
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(
        layers,
        hdr["trial_h"],
        hdr["harm"],
        where=[g > 0 for g in probe.gap],
        color=COLORS["trial_h"],
        alpha=0.18,
        interpolate=True,
        label="dissociation gap",
    )
    _set_curves(ax, layers, hdr)
    ax.plot(layers, probe.accuracy, ":", color="black", lw=1, label="probe held-out accuracy")
    ax.plot(
        layers,
        probe.trial_separability,
        "-.",
        color="#8e44ad",
        lw=1,
        label="TRIAL-H vs TRIAL-B separability\n(probe trained inside the dilemma)",
    )
    peak, value = probe.peak_layer, probe.peak_gap
    ax.axvline(peak, color="black", lw=0.8, ls="--", alpha=0.6)
    ax.text(0.01, 1.01, f"peak gap {value:+.2f} at layer {peak}", transform=ax.transAxes, fontsize=9, va="bottom")
    ax.set(
        xlabel="layer (0 = embeddings)",
        ylabel="harm detection rate",
        ylim=(-0.03, 1.03),
        title=f"Where the model knows it is harmful: per-layer probe HDR ({result.model})\n",
    )
    ax.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_controls(result: ProbeResult, path: Path) -> Path:
    """Is the gap a dissociation? The gap beside its neutral-wrapper control, and what the wrappers hide."""
    plt = _pyplot()
    probe = result.analyses.probe
    assert probe is not None
    layers = result.layers
    control = probe.control
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True)
    top.axhline(0, color="black", lw=0.6)
    top.plot(
        layers,
        probe.gap,
        "-",
        color=WRAPPER_COLORS["trial"],
        marker="o",
        markersize=3,
        label="gap: HDR D_harm - D_TRIAL-H",
    )
    if control:
        top.plot(
            layers,
            control.gap_neutral,
            "-",
            color=WRAPPER_COLORS["neutral"],
            marker="o",
            markersize=3,
            label="control gap: HDR D_harm - D_neutral-H",
        )
        low, high = control.excess_low, control.excess_high
        top.plot(
            layers,
            control.excess_harmful,
            ":",
            color="black",
            lw=1,
            label="harmful side only: HDR neutral-H - TRIAL-H",
        )
        top.fill_between(
            layers,
            low,
            high,
            color="black",
            alpha=0.15,
            label=f"excess 95% CI ({control.refits} refits x bootstrap)",
        )
        top.plot(
            layers,
            control.excess,
            "-",
            color="black",
            lw=1.5,
            label=f"harm-specific excess, net of benign twins (n={control.n})",
        )
    top.set(
        ylabel="HDR difference",
        ylim=(-1.05, 1.05),
        title=f"Dissociation gap vs its neutral-wrapper control ({result.model})",
    )
    top.legend(fontsize=7, loc="best")
    top.grid(alpha=0.3)
    bottom.axhline(0.5, color="black", lw=0.6, ls=":")
    bottom.plot(layers, probe.auroc, "-", color="black", lw=1, label="plain probe, plain harm vs benign")
    for w, values in probe.plain_probe_auroc.items():
        label = "TRIAL" if w == "trial" else w
        bottom.plot(layers, values, "--", color=WRAPPER_COLORS[w], label=f"plain probe on {label}-H vs {label}-B")
        bottom.plot(
            layers,
            probe.within_wrapper[w].auroc,
            "-",
            color=WRAPPER_COLORS[w],
            marker=".",
            label=f"probe trained inside {label} (cross-fitted)",
        )
    bottom.set(xlabel="layer (0 = embeddings)", ylabel="AUROC (0.5 = chance)", ylim=(-0.03, 1.03))
    bottom.legend(fontsize=7, loc="lower right")
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def plot_projection(result: ProbeResult, path: Path) -> Path:
    plt = _pyplot()
    direction = result.analyses.direction
    assert direction is not None
    rel = direction.rho_relative
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.axhline(0, color="#2e86c1", lw=0.6)
    ax.axhline(1, color="#c0392b", lw=0.6)
    _set_curves(ax, result.layers, rel)
    ax.set(
        xlabel="layer (0 = embeddings)",
        ylabel="projection on refusal direction\n(0 = benign mean, 1 = harm mean)",
        title="Refusal-direction projection per layer",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_logit_lens(result: ProbeResult, path: Path) -> Path:
    plt = _pyplot()
    lens = result.analyses.lens
    assert lens is not None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _set_curves(ax, result.layers, lens.p_refuse)
    ax.set_yscale("log", nonpositive="mask")  # layer 0 can underflow to exactly 0
    ax.set(
        xlabel="layer (0 = embeddings)",
        ylabel="P(refusal tokens), mean over prompts",
        title="Logit lens: refusal-token probability decoded from each layer",
    )
    ax.text(
        0.01,
        0.02,
        "tokens: " + " ".join(repr(t) for t in lens.tokens)[:120],
        transform=ax.transAxes,
        fontsize=7,
        color="#555",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_transfer(result: ProbeResult, path: Path) -> Path:
    plt = _pyplot()
    transfer = result.analyses.transfer
    assert transfer is not None
    panels = [
        (transfer.accuracy, "held-out accuracy (harm vs benign)"),
        (transfer.hdr_trial_h, "HDR on D_TRIAL-H"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, (matrix, title) in zip(axes, panels, strict=False):
        image = ax.imshow(matrix, origin="lower", cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set(xlabel="evaluated at layer j", ylabel="probe trained at layer i", title=title)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("Cross-layer transfer of the harm probe")
    return _save(fig, path)


def plot_trajectories(result: ProbeResult, path: Path) -> Path:
    plt = _pyplot()
    traj, direction = result.analyses.trajectories, result.analyses.direction
    assert traj is not None and direction is not None
    layers = traj.layers
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.8), squeeze=False)
    refs = direction.rho_mean
    for ax, layer in zip(axes[0], layers, strict=False):
        for conv in traj.conversations:
            series = conv["rho"][str(layer)]
            color = "#c0392b" if conv["success"] else "#7f8c8d"
            ax.plot(range(1, len(series) + 1), series, color=color, alpha=0.35, lw=1)
        mean = traj.mean_by_turn[str(layer)]
        ax.plot(range(1, len(mean) + 1), mean, color="black", lw=2, label="mean")
        ax.axhline(refs["harm"][layer], color=COLORS["harm"], ls=":", lw=1, label="D_harm mean")
        ax.axhline(refs["benign"][layer], color=COLORS["benign"], ls=":", lw=1, label="D_benign mean")
        ax.set(title=f"layer {layer}", xlabel="turn")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("rho (projection on refusal direction)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Multi-turn trajectories (red: jailbroken, grey: not)")
    return _save(fig, path)


Drawer = Callable[[ProbeResult, Path], Path]


def drawers(analyses: Analyses) -> list[tuple[str, Drawer]]:
    """(file name, drawer) of every plot whose analysis ran."""
    plots: list[tuple[str, Drawer]] = []
    if analyses.probe:
        plots += [("hdr.png", plot_hdr), ("controls.png", plot_controls)]
    if analyses.direction:
        plots.append(("projection.png", plot_projection))
    if analyses.lens:
        plots.append(("logit_lens.png", plot_logit_lens))
    if analyses.transfer:
        plots.append(("transfer.png", plot_transfer))
    if analyses.trajectories:
        plots.append(("trajectories.png", plot_trajectories))
    return plots
