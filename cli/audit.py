"""``npdpsnn audit``: measured privacy beside the accountant's bound.

\b
npdpsnn audit canaries mnist --sigma 1.0 --canaries 1000       # one planned run, white-box canaries
npdpsnn audit run runs/<folder> --lira --shadows 16 --pool 2000  # membership inference and inversion
npdpsnn audit claims mnist --scale small --out audit-claims     # the DPSNN paper's four claims
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from npdpsnn.cli.train import config_options, config_values, explicit_options
from npdpsnn.data.registry import DATASETS
from npdpsnn.errors import UserError


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return None  # per-example arrays stay out of reports
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else str(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


@click.group("audit")
def audit() -> None:
    """Empirical privacy: canary lower bounds, membership inference, gradient inversion."""


@audit.command("canaries")
@click.argument("dataset", type=click.Choice(DATASETS, case_sensitive=False))
@click.option("--canaries", "m", type=int, default=1000, show_default=True, help="Number of canaries m.")
@click.option("--kind", type=click.Choice(["dirac", "input"]), default="dirac", show_default=True,
              help="White-box gradient canaries or mislabelled input images.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="1 - confidence of the lower bound.")
@click.option("--audit-seed", type=int, default=0, show_default=True, help="Seed of the canaries' inclusion.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_options
@click.pass_context
def canaries(ctx: click.Context, dataset: str, m: int, kind: str, alpha: float, audit_seed: int, as_json: bool,
             **opts) -> None:
    """Train once with canaries and print the one-run epsilon lower bounds beside the accounted epsilon."""
    from npdpsnn.audit.canary_run import canary_audit
    from npdpsnn.cli.train import _backend, _set_threads
    from npdpsnn.data import load_dataset
    from npdpsnn.training.config import TrainConfig

    dataset = dataset.lower()
    data_dir = opts.pop("data_dir")
    cfg = TrainConfig.from_values(dataset, config_values(dataset, opts, explicit_options(ctx, opts)))
    _set_threads(cfg.run.threads)
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.run.split_seed)
    r = canary_audit(cfg, data, m=m, kind=kind, seed=audit_seed, alpha=alpha, backend=_backend(cfg.run.device))
    if as_json:
        click.echo(json.dumps(_jsonable(r.to_dict())))
        return
    click.echo(f"{kind} canaries: m = {r.m} ({r.n_included} included), sigma = {r.sigma:g}, q = {r.sample_rate:.5g}, "
               f"{r.steps} steps, delta = {r.delta:g}, confidence {1 - r.alpha:g}")
    click.echo(f"  epsilon lower bound, one-run      {r.one_run.epsilon:.4f}   (top {r.one_run.k_pos} guesses, "
               f"{r.one_run.n_correct} correct)")
    click.echo(f"  epsilon lower bound, f-DP (GDP)   {r.fdp.epsilon:.4f}")
    click.echo("  accounted epsilon                 " + "  ".join(
        f"{k.split('_')[0]} {_fmt(v)}" for k, v in r.accounted.items() if k.endswith("epsilon")))
    if r.exceeds_accounted:
        raise UserError("the lower bound exceeds the accounted epsilon: the training does not do what its "
                        "privacy analysis assumes (a bug); do not trust this run's privacy statement")


@audit.command("run")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--members", "n", type=int, default=2000, show_default=True,
              help="Training examples (and as many test examples) for the loss attack.")
@click.option("--lira", is_flag=True, help="Also LiRA: train shadow models with the run's configuration.")
@click.option("--shadows", type=int, default=16, show_default=True)
@click.option("--pool", type=int, default=None, help="LiRA's pool of training examples [default: the run's "
              "--limit-train]; each model trains on a random half.")
@click.option("--inversions", type=int, default=2, show_default=True, help="Test examples to invert.")
@click.option("--iterations", type=int, default=200, show_default=True, help="Inversion iterations.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run_cmd(run: Path, n: int, lira: bool, shadows: int, pool: int | None, inversions: int, iterations: int,
            data_dir: Path | None, as_json: bool) -> None:
    """Attack the model of RUN: loss attack (and LiRA) membership inference and gradient inversion."""
    import numpy as np

    from npdpsnn.audit.gradient_inversion import inversion_attack
    from npdpsnn.audit.membership import lira_audit, loss_audit
    from npdpsnn.data import load_dataset
    from npdpsnn.privacy.accountants import PrivacyAccountant
    from npdpsnn.training.checkpoint import load_checkpoint
    from npdpsnn.training.config import TrainConfig

    state = load_checkpoint(run, with_optimizer=False)
    cfg = TrainConfig.from_dict(state.train_config)
    ledger = PrivacyAccountant.from_state_dict(state.accountant) if cfg.dp.enabled else None
    data = load_dataset(cfg.dataset, data_dir=data_dir, seed=cfg.run.split_seed)
    report = {"run": str(run), "loss": loss_audit(state.network, data, cfg, ledger, n=n).to_dict()}
    if lira:
        report["lira"] = lira_audit(cfg, data, shadows=shadows, pool=pool).to_dict()
    inv = []
    raw = data.test_x.raw[:inversions].astype(np.float64) / 255.0
    sigmas = (cfg.dp.sigma,) if cfg.dp.enabled else (1.0,)
    for i in range(min(inversions, len(raw))):
        for r in inversion_attack(state.network, raw[i], int(data.test_y[i]), data.normalization, clip=cfg.dp.clip,
                                  sigmas=sigmas, iterations=iterations, restarts=1, seed=i):
            inv.append({"example": i, "variant": r.variant, "sigma": r.sigma, "psnr": r.psnr, "ssim": r.ssim,
                        "cosine": r.cosine})
    report["inversion"] = inv
    if as_json:
        click.echo(json.dumps(_jsonable(report)))
        return
    loss = report["loss"]
    ceil = loss["ceilings"]
    click.echo(f"{run}: loss attack on {loss['n_members']} members / {loss['n_nonmembers']} non-members: "
               f"AUC {loss['loss']['auc']:.4f}, TPR {_tprs(loss['loss'])}")
    click.echo(f"  mu-GDP ceilings: AUC <= {_fmt(ceil['auc_certified'])} (certified epsilon), "
               f"{_fmt(ceil['auc_clt'])} (CLT mu, an approximation)")
    if lira:
        for side in ("lira_online", "lira_offline"):
            m = report["lira"][side]["metrics"]
            click.echo(f"  {side.replace('_', ' ')} ({shadows} shadows): AUC {m['auc']:.4f}, TPR {_tprs(m)}")
    for row in inv:
        click.echo(f"  inversion of test example {row['example']} from the {row['variant']} gradient"
                   + (f" (sigma {row['sigma']:g})" if row["sigma"] is not None else "")
                   + f": PSNR {row['psnr']:.2f} dB, SSIM {_fmt(row['ssim'])}")


def _tprs(metrics: dict) -> str:
    return ", ".join(f"{v:.4f} at FPR {k}" for k, v in metrics["tpr_at_fpr"].items())


@audit.command("claims")
@click.argument("dataset", type=click.Choice(DATASETS, case_sensitive=False))
@click.option("--scale", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True)
@click.option("--sigma", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("audit-claims"),
              show_default=True, help="Folder for report.json and report.md.")
def claims(dataset: str, scale: str, sigma: float, seed: int, data_dir: Path | None, out: Path) -> None:
    """Test the DPSNN paper's claims (SNN vs ANN, surrogates, IF vs LIF, T) with attacks at equal epsilon."""
    from npdpsnn.audit.claims import claims_markdown, claims_study
    from npdpsnn.data import load_dataset
    from npdpsnn.training.files import atomic_write_json, atomic_write_text

    data = load_dataset(dataset.lower(), data_dir=data_dir)
    report = claims_study(data, scale=scale, sigma=sigma, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", _jsonable(report))
    md = claims_markdown(report)
    atomic_write_text(out / "report.md", md)
    click.echo(md)
    written = [out / "report.json", out / "report.md"]
    try:
        from npdpsnn.plot.figures import write_claims_figure

        written += write_claims_figure(report, out / "report")
    except UserError as exc:  # matplotlib not installed: the report stands without its figure
        click.echo(f"no figure: {exc}", err=True)
    click.echo("written: " + ", ".join(map(str, written)))
