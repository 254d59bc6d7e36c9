"""``npdpsnn privacy``: epsilon of a DP-SGD run, or the sigma for a target epsilon.

The run is described either by ``--batch-size B --dataset-size N --epochs E``
(Poisson sampling rate ``q = B / N`` and ``steps = E * ceil(N / B)``, the number
of steps the training loop takes with ``steps_per_epoch = ceil(N / B)``) or
directly by ``--sample-rate q --steps n``.
"""

from __future__ import annotations

import json
import math

import click

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import ANALYSES, PrivacyAccountant, calibrate_noise, get_analysis
from npdpsnn.privacy.accountants.analyses import ALIASES, DEFAULT_ANALYSIS, delta_caveat
from npdpsnn.privacy.events import GaussianEvent, SelfComposedEvent, poisson_equivalent
from npdpsnn.privacy.sampling import DEFAULT_SAMPLING, SAMPLINGS, get_scheme_class, make_sampler

#: ``--accountant`` choices: every analysis, its older aliases, and "all".
ACCOUNTANT_CHOICES = (*ANALYSES, *ALIASES, "all")


def _run_shape(batch_size, dataset_size, epochs, sample_rate, steps,
               sampling: str = DEFAULT_SAMPLING) -> tuple[float, int, dict]:
    """(q, steps, description) from either way of describing the run; the
    epoch length comes from the sampling scheme, as in training."""
    by_epochs = [x is not None for x in (batch_size, dataset_size, epochs)]
    by_rate = [x is not None for x in (sample_rate, steps)]
    if any(by_epochs) and any(by_rate):
        raise UserError("give either --batch-size/--dataset-size/--epochs or --sample-rate/--steps, not both")
    if any(by_rate):
        if not all(by_rate):
            raise UserError("--sample-rate and --steps go together")
        if not (0.0 < sample_rate <= 1.0):
            raise UserError(f"--sample-rate must be in (0, 1], got {sample_rate:g}")
        if steps < 1:
            raise UserError(f"--steps must be >= 1, got {steps}")
        return sample_rate, steps, {"batch_size": None, "dataset_size": None, "epochs": None}
    if not all(by_epochs):
        raise UserError("describe the run with --batch-size, --dataset-size and --epochs (or --sample-rate and --steps)")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if dataset_size < 1:
        raise UserError(f"--dataset-size must be >= 1, got {dataset_size}")
    if batch_size > dataset_size:
        raise UserError(f"--batch-size ({batch_size}) must not exceed --dataset-size ({dataset_size})")
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    scheme = make_sampler(sampling, dataset_size, batch_size)
    info = {"batch_size": batch_size, "dataset_size": dataset_size, "epochs": epochs,
            "steps_per_epoch": scheme.steps_per_epoch}
    return scheme.sample_rate, epochs * scheme.steps_per_epoch, info


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    if 0.01 <= abs(x) < 1e4:
        return f"{x:.{digits}f}"
    return f"{x:.{digits}g}"


def _json_number(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "nan"
    return x


@click.command("privacy")
@click.option("--sigma", type=float, default=None, help="Noise multiplier sigma (noise std / clipping norm).")
@click.option("--target-epsilon", type=float, default=None, help="Calibrate sigma for this epsilon instead of --sigma.")
@click.option("--batch-size", type=int, default=None, help="Expected batch size B (q = B / N).")
@click.option("--dataset-size", type=int, default=None, help="Training set size N.")
@click.option("--epochs", type=int, default=None, help="Epochs; steps = epochs * ceil(N / B).")
@click.option("--sample-rate", type=float, default=None, help="Poisson sampling rate q (with --steps).")
@click.option("--steps", type=int, default=None, help="Number of DP-SGD steps (with --sample-rate).")
@click.option("--delta", type=float, default=1e-5, show_default=True, help="Target delta.")
@click.option(
    "--accountant",
    type=click.Choice(ACCOUNTANT_CHOICES),
    default=None,
    help="Which accountant(s) [default: all; rdp when calibrating].",
)
@click.option(
    "--sampling",
    type=click.Choice(tuple(SAMPLINGS)),
    default=DEFAULT_SAMPLING,
    show_default=True,
    help="Batch sampling of the run; shuffle is reported with the Poisson analysis, marked as not covered.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def privacy(
    sigma, target_epsilon, batch_size, dataset_size, epochs, sample_rate, steps, delta, accountant, sampling, as_json
):
    """Privacy spent by DP-SGD with Poisson subsampling (RDP, CLT-GDP and PLD accountants).

    \b
    npdpsnn privacy --sigma 1.0 --batch-size 250 --dataset-size 60000 --epochs 60
    npdpsnn privacy --sigma 1.5 --sample-rate 0.04 --steps 2250 --accountant pld
    npdpsnn privacy --target-epsilon 2 --batch-size 250 --dataset-size 60000 --epochs 60
    """
    if (sigma is None) == (target_epsilon is None):
        raise UserError("give exactly one of --sigma and --target-epsilon")
    q, n_steps, shape = _run_shape(batch_size, dataset_size, epochs, sample_rate, steps, sampling)
    if not (0.0 < delta < 1.0):
        raise UserError(f"--delta must be in (0, 1), got {delta:g}")

    calibrated_with = None
    if target_epsilon is not None:
        if accountant == "all":
            raise UserError("--target-epsilon needs one accountant: --accountant " + ", ".join(ANALYSES))
        calibrated_with = get_analysis(accountant or DEFAULT_ANALYSIS).name
        if not (target_epsilon > 0.0 and math.isfinite(target_epsilon)):
            raise UserError(f"--target-epsilon must be a finite number > 0, got {target_epsilon:g}")
        event_class = get_scheme_class(sampling).event_class
        # shuffled batches: calibrated for Poisson sampling at the same rate (reported as not covered)
        sigma = calibrate_noise(target_epsilon, lambda s: poisson_equivalent(
            SelfComposedEvent(event_class(q, GaussianEvent(s)), n_steps)), delta, calibrated_with)
        wanted = tuple(ANALYSES)
    else:
        if not (sigma > 0.0 and math.isfinite(sigma)):
            raise UserError(f"--sigma must be a finite number > 0, got {sigma:g}")
        choice = accountant or "all"
        wanted = tuple(ANALYSES) if choice == "all" else (get_analysis(choice).name,)
    # an analysis outside its delta range is skipped when it was not asked for by name
    skipped = [a for a in wanted if delta < ANALYSES[a].min_delta and (accountant in (None, "all") or calibrated_with)]
    for name in wanted:
        if name not in skipped:
            ANALYSES[name].check_delta(delta)
    wanted = tuple(a for a in wanted if a not in skipped)

    acc = PrivacyAccountant(sampling=sampling)
    acc.step(sigma, q, n_steps)
    values = acc.all_epsilons(delta)
    result = {
        "sigma": sigma,
        "sample_rate": q,
        "steps": n_steps,
        "delta": delta,
        **{c: (values[c] if a.name in wanted else None) for a in ANALYSES.values() for c in a.columns},
        "target_epsilon": target_epsilon,
        "calibrated_with": calibrated_with,
        "sampling": sampling,
        "covered_by_analysis": acc.covered_by_analysis,
        "batch_size": shape["batch_size"],
        "dataset_size": shape["dataset_size"],
        "epochs": shape["epochs"],
    }
    caveat = delta_caveat(delta, shape["dataset_size"]) if shape["dataset_size"] else None
    if as_json:
        click.echo(json.dumps({k: _json_number(v) for k, v in result.items()}))
        return

    lines = ["DP-SGD privacy, Poisson subsampled Gaussian mechanism"]
    if calibrated_with:
        lines.append(
            f"  sigma (noise multiplier)  {sigma:g}   "
            f"(smallest, to 4 digits, with {calibrated_with} epsilon <= {target_epsilon:g})"
        )
    else:
        lines.append(f"  sigma (noise multiplier)  {sigma:g}")
    if shape["batch_size"] is not None:
        lines.append(f"  sample rate q             {q:.6g}   (batch {shape['batch_size']} / dataset {shape['dataset_size']})")
        lines.append(
            f"  steps                     {n_steps}   ({shape['epochs']} epochs x {shape['steps_per_epoch']} steps per epoch, {sampling} sampling)"
        )
    else:
        lines.append(f"  sample rate q             {q:.6g}")
        lines.append(f"  steps                     {n_steps}")
    lines.append(f"  delta                     {delta:g}")
    lines.append("")
    lines.append(f"  {'accountant':<30}epsilon")
    for a in ANALYSES.values():
        if a.name in skipped:
            lines.append(f"  {a.label:<30}-   (needs delta >= {a.min_delta:g})")
        elif a.name in wanted:
            row = f"  {a.label:<30}{_fmt(result[a.epsilon_column])}"
            row += "".join(f"   ({c.split('_')[-1]} = {_fmt(result[c])})" for c in a.columns[1:])
            lines.append(row)
    if caveat:
        lines += ["", f"  warning: {caveat}"]
    if not acc.covered_by_analysis:
        lines.append("")
        lines.append("  note: shuffled fixed-size batches are NOT covered by this Poisson analysis;")
        lines.append("        the numbers above are what Poisson sampling at the same rate would give.")
    click.echo("\n".join(lines))
