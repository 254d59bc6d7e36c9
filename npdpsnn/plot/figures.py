"""Drawing the layouts of :mod:`.curves` as PNG and SVG (matplotlib, Agg; the optional extra ``npdpsnn[plot]``).

This is the only module that imports matplotlib, and only when a figure is
drawn.  Figures are built on :class:`matplotlib.figure.Figure` directly (no
pyplot state) and saved with fixed metadata, so the same runs give the same
SVG bytes.
"""

from __future__ import annotations

from pathlib import Path

from npdpsnn.errors import UserError
from npdpsnn.plot.curves import Panel, PlotRun, accuracy_layout, epsilon_layout

__all__ = ["FORMATS", "draw_panels", "write_figures"]

#: File formats every figure is written in.
FORMATS: tuple[str, ...] = ("png", "svg")

_PANEL_SIZE = (4.2, 3.4)  # inches per panel
_DPI = 150


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'npdpsnn[plot]'") from None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    return matplotlib, Figure, MaxNLocator


def write_figures(runs: list[PlotRun], out_dir: str | Path, name: str, panel_by: str | None = None,
                  curve_by: list[str] | None = None, title: str | None = None) -> list[Path]:
    """Write ``NAME.png/.svg`` (test accuracy per epoch) and ``NAME-epsilon.png/.svg``
    (epsilon of every analysis per epoch) into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    paths = draw_panels(accuracy_layout(runs, panel_by, curve_by), out_dir / name, "test accuracy (%)", title)
    eps = epsilon_layout(runs)
    if any(p.curves for p in eps):
        deltas = {r.record.summary.get("delta") for r in runs if r.record.summary.get("dp")}
        ylabel = f"ε at δ = {deltas.pop():g}" if len(deltas) == 1 else "ε"
        paths += draw_panels(eps, out_dir / f"{name}-epsilon", ylabel, title)
    return paths


def draw_panels(panels: list[Panel], stem: Path, ylabel: str, title: str | None = None) -> list[Path]:
    """One row of panels sharing the y axis, a legend below them; ``stem.png`` and ``stem.svg``."""
    matplotlib, Figure, MaxNLocator = _matplotlib()
    n = max(1, len(panels))
    with matplotlib.rc_context({"svg.hashsalt": "npdpsnn", "font.size": 9, "axes.grid": True,
                                "grid.alpha": 0.3}):
        fig = Figure(figsize=(_PANEL_SIZE[0] * n, _PANEL_SIZE[1] + 0.6), layout="constrained")
        axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        labels: dict[str, int] = {}
        for ax, panel in zip(axes, panels):
            for curve in panel.curves:
                i = labels.setdefault(curve.label, len(labels))
                color = colors[i % len(colors)]
                ax.plot(curve.epochs, curve.mean, color=color, label=curve.label, linewidth=1.6,
                        marker="o" if len(curve.epochs) <= 12 else None, markersize=3)
                if curve.n > 1:
                    ax.fill_between(curve.epochs, curve.low, curve.high, color=color, alpha=0.15, linewidth=0)
            ax.set_title(panel.title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_ylabel(ylabel)
        handles = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6),
                       frameon=False)
        if title:
            fig.suptitle(title)
        paths = []
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            metadata = {"Date": None} if fmt == "svg" else {"Software": None}
            try:
                fig.savefig(path, format=fmt, dpi=_DPI, metadata=metadata)
            except OSError as exc:
                raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
            paths.append(path)
    return paths


def write_claims_figure(report: dict, stem: str | Path) -> list[Path]:
    """The audit of the paper's claims (:func:`npdpsnn.audit.claims.claims_study`) as one
    row of bar charts -- loss-attack AUC, input-canary epsilon lower bound, inversion PSNR
    from the raw and from the noisy gradient -- one bar per variant; ``stem.png`` / ``.svg``."""
    matplotlib, Figure, _ = _matplotlib()
    metrics = [("loss_auc", "loss-attack AUC"), ("input_eps_lb", "input-canary ε lower bound"),
               ("inversion_psnr_raw", "inversion PSNR, raw (dB)"), ("inversion_psnr_noisy", "inversion PSNR, noisy (dB)")]
    rows = report["variants"]
    names = list(dict.fromkeys(n for n in rows if n not in ("gate", "if", "T5")))  # the base appears once
    stem = Path(stem)
    with matplotlib.rc_context({"svg.hashsalt": "npdpsnn", "font.size": 9}):
        fig = Figure(figsize=(_PANEL_SIZE[0] * len(metrics), _PANEL_SIZE[1]))
        for i, (key, label) in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), i + 1)
            vals = [rows[n].get(key) or 0.0 for n in names]
            errs = [rows[n].get(f"{key}_se") or 0.0 for n in names]
            ax.bar(range(len(names)), vals, yerr=errs, color="0.55")
            ax.set_ylim(0, max(max(v + e for v, e in zip(vals, errs)) * 1.15, 0.1))
            ax.set_xticks(range(len(names)), [("SNN" if n == "snn" else n) for n in names], rotation=45)
            ax.set_title(label)
        fig.suptitle(f"the DPSNN paper's claims at equal ε (scale {report.get('scale')}); lower = more private")
        fig.tight_layout()
        paths = []
        for fmt in FORMATS:
            path = stem.with_suffix(f".{fmt}")
            fig.savefig(path, format=fmt, dpi=_DPI, metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
    return paths
