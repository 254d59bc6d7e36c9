"""``npdpsnn train DATASET``: DP-SGD training of an SNN or ANN, with run records."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from npdpsnn.errors import UserError
from npdpsnn.model.surrogates import SURROGATES

_PAPER = "(DPSNN paper default)"


def _default_out(cfg) -> Path:
    sig = "nodp" if not cfg.dp else (f"sigma{cfg.sigma:g}" if cfg.sigma is not None else f"eps{cfg.target_epsilon:g}")
    net = cfg.net if cfg.net in ("net1", "net2", "face") else "custom"
    base = f"{cfg.dataset}-{cfg.model}-{net}-{cfg.neuron}-{cfg.surrogate}-T{cfg.T}-{sig}-seed{cfg.seed}"
    out = Path("runs") / base
    n = 2
    while out.exists():
        out = Path("runs") / f"{base}-{n}"
        n += 1
    return out


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"output folder {out} is not writable")
    probe = out / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output folder {out} is not writable: {exc.strerror}") from None


class _Progress:
    """A one-line progress bar on stderr (only on a terminal), plus epoch lines."""

    def __init__(self, dp: bool, delta: float, quiet: bool):
        self.tty = sys.stderr.isatty() and not quiet
        self.dp, self.delta = dp, delta
        self.last = 0.0
        self.quiet = quiet

    def step(self, info: dict) -> None:
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.5 and info["batch"] != info["batches"]):
            return
        self.last = now
        frac = info["batch"] / info["batches"]
        bar = "#" * int(frac * 24)
        eps = ""
        if self.dp and info["step"] % 20 == 0:
            self._eps = info["accountant"].epsilon(self.delta, method="rdp")
        if self.dp and getattr(self, "_eps", None) is not None:
            eps = f" eps(rdp)={self._eps:.3g}"
        sys.stderr.write(f"\repoch {info['epoch']} [{bar:<24}] {info['batch']}/{info['batches']} "
                         f"{info['examples_per_second']:.0f} ex/s loss={info['loss']:.4f}{eps}   ")
        sys.stderr.flush()

    def epoch(self, row: dict) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 90 + "\r")
        if self.quiet:
            return

        def f(v, d=4):
            return "-" if v is None else f"{v:.{d}g}"

        click.echo(f"epoch {row['epoch']:3d}  train_loss {row['train_loss']:.4f}  train_acc {row['train_accuracy']:.4f}"
                   f"  test_acc {row['test_accuracy']:.4f}  eps_rdp {f(row['rdp_epsilon'])}  eps_pld "
                   f"{f(row['pld_epsilon'])}  eps_clt {f(row['clt_epsilon'])}  mu_clt {f(row['clt_mu'])}"
                   f"  {row['seconds']:.1f}s")


@click.command("train")
@click.argument("dataset", type=click.Choice(["mnist", "fashion-mnist", "yaleb"], case_sensitive=False))
@click.option("--model", type=click.Choice(["snn", "ann"]), default="snn", show_default=True,
              help="Spiking network or the ANN-tanh baseline.")
@click.option("--net", default=None, help="net1, net2, face or a spec such as 16C7S1-P2S2-32C4S1-P2S2-32-10 "
              "[default: net2; face for yaleb].")
@click.option("--neuron", type=click.Choice(["if", "lif"]), default="if", show_default=True)
@click.option("--surrogate", type=click.Choice(list(SURROGATES)), default="gate", show_default=True)
@click.option("-T", "--time-window", "T", type=int, default=5, show_default=True, help="Time window T.")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="Firing threshold V_th.")
@click.option("--leak", type=float, default=0.2, show_default=True, help="LIF leak lambda.")
@click.option("--detach-reset", is_flag=True, help="Stop the gradient through the reset term.")
@click.option("--sigma", type=float, default=None, help="Noise multiplier sigma.")
@click.option("--target-epsilon", type=float, default=None, help="Calibrate sigma to reach this epsilon.")
@click.option("--clip", type=float, default=None, help="Clipping norm R [default: 1.5; 2.0 for yaleb].")
@click.option("--clipping", type=click.Choice(["flat", "per-layer"]), default="flat", show_default=True)
@click.option("--delta", type=float, default=1e-5, show_default=True)
@click.option("--batch-size", type=int, default=None, help="Expected (logical) batch size [default: 250; 256 yaleb].")
@click.option("--physical-batch", type=int, default=None,
              help="Split logical batches into micro-batches of at most this size (same result; bounds memory) "
                   "[default: 2 x batch size].")
@click.option("--lr", type=float, default=0.25, show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True)
@click.option("--epochs", type=int, default=None, help="[default: 60 mnist, 80 fashion-mnist and yaleb]")
@click.option("--sampling", type=click.Choice(["poisson", "shuffle"]), default="poisson", show_default=True)
@click.option("--no-dp", is_flag=True, help="Train without differential privacy (no clipping, no noise).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise-seed", type=click.Choice(["derived", "os"]), default="derived", show_default=True,
              help="Noise and batch sampling reproducible from --seed, or secret from OS entropy (for a "
                   "model meant for release).")
@click.option("--threads", type=int, default=0, show_default=True, help="CPU threads (0 = all cores).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder [default: runs/<hyperparameters>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Continue the run in this folder from its checkpoint.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder [default: $NPDPSNN_DATA, else the user cache].")
@click.option("--limit-train", type=int, default=None, help="Use only the first N training examples.")
@click.option("--accountant", type=click.Choice(["rdp", "gdp", "pld", "all"]), default="all", show_default=True,
              help="Accountants reported per epoch; the one used by --target-epsilon (all = rdp).")
@click.option("--quiet", is_flag=True, help="No progress bar or epoch lines.")
@click.pass_context
def train(ctx: click.Context, dataset: str, **opts) -> None:
    """Train on DATASET (mnist, fashion-mnist, yaleb) with DP-SGD and report accuracy and epsilon."""
    from npdpsnn.data import load_dataset
    from npdpsnn.training.config import DATASET_DEFAULTS, RESUMABLE_CHANGES, TrainConfig
    from npdpsnn.training.trainer import Trainer, open_resume

    dataset = dataset.lower()
    quiet = opts.pop("quiet")
    out, resume_dir, data_dir = opts.pop("out"), opts.pop("resume"), opts.pop("data_dir")
    no_dp = opts.pop("no_dp")
    defaults = DATASET_DEFAULTS[dataset]
    for k in ("epochs", "batch_size", "clip", "net"):
        if opts[k] is None:
            opts[k] = defaults[k]
    if opts["physical_batch"] is None:  # a Poisson batch is above 2qN with negligible probability
        opts["physical_batch"] = 2 * opts["batch_size"]
    explicit = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}

    state = None
    if resume_dir is not None:
        if out is not None and Path(out) != Path(resume_dir):
            raise UserError("--out and --resume name different folders")
        state = open_resume(resume_dir)
        saved = TrainConfig.from_dict(state.train_config)
        if saved.dataset != dataset:
            raise UserError(f"cannot resume: the run in {resume_dir} trained on {saved.dataset}, not {dataset}")
        changes = {}
        for key in explicit:
            if key in RESUMABLE_CHANGES:
                changes[key] = opts[key]
            elif key == "sigma" and saved.target_epsilon is not None:
                raise UserError("cannot resume: option --sigma conflicts with the checkpoint (it calibrated sigma "
                                "from --target-epsilon)")
            elif getattr(saved, key) != opts[key]:
                flag = "-T" if key == "T" else "--" + key.replace("_", "-")
                raise UserError(f"cannot resume: option {flag}={opts[key]} conflicts with the checkpoint "
                                f"({getattr(saved, key)!r})")
        if no_dp and saved.dp:
            raise UserError("cannot resume: --no-dp conflicts with the checkpoint (trained with DP)")
        if saved.target_epsilon is not None and "epochs" in changes and changes["epochs"] != saved.epochs:
            raise UserError(f"cannot resume with --epochs {changes['epochs']}: sigma was calibrated for "
                            f"epsilon {saved.target_epsilon} over {saved.epochs} epochs")
        cfg = TrainConfig.from_dict({**saved.to_dict(), **changes})
        if cfg.epochs <= state.epoch:
            raise UserError(f"nothing to do: the run in {resume_dir} has completed {state.epoch} of "
                            f"{cfg.epochs} epochs (raise --epochs to continue)")
        out = Path(resume_dir)
    else:
        if no_dp and (opts["sigma"] is not None or opts["target_epsilon"] is not None):
            raise UserError("--no-dp cannot be combined with --sigma or --target-epsilon")
        if opts["sigma"] is not None and opts["target_epsilon"] is not None:
            raise UserError("give exactly one of --sigma and --target-epsilon")
        cfg = TrainConfig(dataset=dataset, dp=not no_dp, **opts)
        if out is None:
            out = _default_out(cfg)
        elif (Path(out) / "checkpoint.h5").exists():
            raise UserError(f"{out} already holds a run; use --resume {out} to continue it or choose another --out")

    backend = _backend(cfg.device)
    _set_threads(cfg.threads)
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.split_seed)
    trainer = Trainer(cfg, data, out, backend=backend, resume=state)
    _check_out_dir(out)
    if not quiet:
        c = trainer.cfg
        dp = f"DP-SGD sigma={c.sigma:.4g} R={c.clip:g} delta={c.delta:g}" if c.dp else "no DP"
        click.echo(f"npdpsnn: {c.dataset} {c.model} {c.spec} neuron={c.neuron} surrogate={c.surrogate} T={c.T} "
                   f"| {dp} | batch {c.batch_size} ({c.sampling}, q={trainer.sample_rate:.5g}) lr={c.lr:g} | "
                   f"{trainer.n_train} train examples, {trainer.steps_per_epoch} steps/epoch | "
                   f"epochs {trainer.epoch + 1}..{c.epochs} | {backend} | run folder {out}")
    progress = _Progress(cfg.dp, cfg.delta, quiet)

    # The first Ctrl-C / SIGTERM asks the trainer to stop at the next step boundary (never
    # inside a checkpoint write); a second one interrupts at once.
    stop = {"requested": False}

    def _request_stop(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True

    old = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = trainer.run(on_step=progress.step, on_epoch=progress.epoch,
                              should_stop=lambda: stop["requested"])
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the last complete checkpoint is in {out} (resume with --resume {out})", err=True)
        sys.exit(130)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if not quiet:
        click.echo(f"test accuracy {summary['test_accuracy']:.4f} (best {summary['best_test_accuracy']:.4f} at epoch "
                   f"{summary['best_epoch']})")
        click.echo(summary["privacy_statement"])
        click.echo(f"records: {out}/summary.json, metrics.csv, checkpoint.h5 (private), model.h5 (weights only)")


def _backend(device: str) -> str:
    if device == "cpu":
        return "numba"
    from npdpsnn.kernels.dispatch import resolve_device

    return resolve_device(device)


def _set_threads(threads: int) -> None:
    if threads:
        from npdpsnn.kernels.dispatch import set_threads

        set_threads(threads)
