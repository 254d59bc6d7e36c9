"""``npdpsnn train DATASET``: DP-SGD training of an SNN or ANN, with run records."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from npdpsnn.data.registry import DATASETS
from npdpsnn.errors import UserError
from npdpsnn.model.surrogates import SURROGATES
from npdpsnn.privacy.accountants import ANALYSES
from npdpsnn.privacy.accountants.analyses import ALIASES, DEFAULT_ANALYSIS
from npdpsnn.privacy.mechanism import CLIPPINGS
from npdpsnn.privacy.sampling import DEFAULT_SAMPLING, SAMPLINGS
from npdpsnn.cli.fields import FIELD_OF_OPTION
from npdpsnn.kernels.backend import DEVICES
from npdpsnn.training.callbacks import Callback
from npdpsnn.training.config import PRESETS




def _default_out(cfg) -> Path:
    """``runs/<name>``, the name saying what differs from the defaults (``-2``, ``-3`` for repeats)."""
    from npdpsnn.training.naming import run_name

    base = run_name(cfg)
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


class _Progress(Callback):
    """What the run is doing, at every moment: a kernel-preparation line, then a
    one-line progress bar on a terminal -- or, when stderr is a file or a pipe
    (cluster jobs, nohup), a plain line every tenth of an epoch -- and one line
    per epoch on stdout."""

    def __init__(self, dp: bool, delta: float, quiet: bool):
        self.tty = sys.stderr.isatty() and not quiet
        self.dp, self.delta = dp, delta
        self.last = 0.0
        self.quiet = quiet

    def on_fit_start(self, trainer) -> None:
        if self.quiet:
            return
        click.echo("preparing kernels (compiled on the first run, then loaded from the cache)...", err=True)
        t0 = time.perf_counter()
        trainer.warm_up()
        click.echo(f"kernels ready in {time.perf_counter() - t0:.1f} s", err=True)

    def on_step(self, trainer, info: dict) -> None:
        if self.quiet:
            return
        if self.tty:
            now = time.monotonic()
            if now - self.last < 0.5 and info["batch"] != info["batches"]:
                return
            self.last = now
            bar = "#" * int(info["batch"] / info["batches"] * 24)
            sys.stderr.write(f"\r[{bar:<24}] {self._text(info)}   ")
            sys.stderr.flush()
        elif info["batch"] % -(-info["batches"] // 10) == 0 and info["batch"] != info["batches"]:
            click.echo(self._text(info), err=True)

    def _text(self, info: dict) -> str:
        eps = f" eps({DEFAULT_ANALYSIS})={info['accountant'].epsilon(self.delta):.3g}" if self.dp else ""
        return (f"epoch {info['epoch']} step {info['batch']}/{info['batches']} {info['examples_per_second']:.0f} "
                f"ex/s loss={info['loss']:.4f}{eps}")

    def on_epoch_end(self, trainer, row: dict) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * 100 + "\r")
        if self.quiet:
            return

        def f(v, d=4):
            return "-" if v is None else f"{v:.{d}g}"

        click.echo(f"epoch {row['epoch']:3d}  train_loss {row['train_loss']:.4f}  train_acc {row['train_accuracy']:.4f}"
                   f"  test_acc {row['test_accuracy']:.4f}  eps_rdp {f(row['rdp_epsilon'])}  eps_pld "
                   f"{f(row['pld_epsilon'])}  eps_clt {f(row['clt_epsilon'])}  mu_clt {f(row['clt_mu'])}"
                   f"  {row['seconds']:.1f}s")


def _float_list(text):
    """``"1.2,0.8"`` -> ``(1.2, 0.8)`` (a click option type)."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {text!r}") from None


#: The options that set configuration fields (and --data-dir), shared by every
#: command that builds a training configuration (train, audit canaries, ...).
_CONFIG_OPTIONS = [
    click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
                 help="A named recipe: paper (the DPSNN paper's settings, also the defaults) or tuned (momentum, "
                      "batch 1000, 20 epochs, weight averaging; chosen on a validation split). Options given "
                      "explicitly override it."),
    click.option("--model", type=click.Choice(["snn", "ann"]), default="snn", show_default=True,
                  help="Spiking network or the ANN-tanh baseline."),
    click.option("--net", default=None, help="net1, net2, face or a spec such as 16C7S1-P2S2-32C4S1-P2S2-32-10 "
                  "[default: net2; face for yaleb]."),
    click.option("--neuron", type=click.Choice(["if", "lif"]), default="if", show_default=True),
    click.option("--surrogate", type=click.Choice(list(SURROGATES)), default="gate", show_default=True),
    click.option("-T", "--time-window", "T", type=int, default=5, show_default=True, help="Time window T."),
    click.option("--threshold", type=float, default=0.5, show_default=True, help="Firing threshold V_th."),
    click.option("--leak", type=float, default=0.2, show_default=True, help="LIF leak lambda."),
    click.option("--detach-reset", is_flag=True, help="Stop the gradient through the reset term."),
    click.option("--reset", type=click.Choice(["zero", "subtract"]), default="zero", show_default=True,
                 help="SNN reset: to zero (the paper) or by subtraction of the threshold (conversion-friendly)."),
    click.option("--thresholds", type=_float_list, default=None,
                 help="Per-layer thresholds, one per hidden weight layer, e.g. 1.2,0.8,1.0 [default: --threshold]."),
    click.option("--activation", type=click.Choice(["tanh", "relu"]), default="tanh", show_default=True,
                 help="ANN activation."),
    click.option("--no-bias", is_flag=True, help="Weight layers without biases."),
    click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True,
                 help="SNN input: the image at every step, or Poisson spikes at the pixel intensities."),
    click.option("--encoding-seed", type=int, default=0, show_default=True, help="Seed of the Poisson input."),
    click.option("--sigma", type=float, default=None,
                  help="Noise multiplier sigma (required for DP training, unless --target-epsilon or --no-dp)."),
    click.option("--target-epsilon", type=float, default=None, help="Calibrate sigma to reach this epsilon."),
    click.option("--clip", type=float, default=None, help="Clipping norm R [default: 1.5; 2.0 for yaleb]."),
    click.option("--clipping", type=click.Choice(list(CLIPPINGS)), default="flat", show_default=True,
                 help="flat (eq. 11), per-layer (R / sqrt(L) each), or normalize (g R / (||g|| + 0.01), AUTO-S)."),
    click.option("--augment-mult", type=int, default=1, show_default=True,
                 help="Average each example's gradient over K randomly shifted copies before clipping "
                      "(augmentation multiplicity; the privacy guarantee is unchanged)."),
    click.option("--delta", type=float, default=1e-5, show_default=True),
    click.option("--batch-size", type=int, default=None, help="Expected (logical) batch size [default: 250; 256 yaleb]."),
    click.option("--physical-batch", type=int, default=None,
                  help="Split logical batches into micro-batches of at most this size (same result; bounds memory) "
                       "[default: 2 x batch size]."),
    click.option("--lr", type=float, default=0.25, show_default=True),
    click.option("--momentum", type=float, default=0.0, show_default=True),
    click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
                  help="Learning-rate schedule over the whole run (costs no privacy)."),
    click.option("--ema", type=float, default=None,
                  help="Also evaluate and save (model_ema.h5) an exponential moving average of the weights with this "
                       "decay, e.g. 0.999 (post-processing: costs no privacy)."),
    click.option("--init-gain", type=float, default=1.0, show_default=True,
                  help="Scale the initial weights: U(-g/sqrt(fan_in), g/sqrt(fan_in)); 1 is PyTorch's default."),
    click.option("--validation", type=int, default=0, show_default=True,
                  help="Hold out this many training examples for model selection (validation_accuracy column)."),
    click.option("--epochs", type=int, default=None, help="[default: 60 mnist, 80 fashion-mnist and yaleb]"),
    click.option("--sampling", type=click.Choice(list(SAMPLINGS)), default=DEFAULT_SAMPLING, show_default=True),
    click.option("--no-dp", is_flag=True, help="Train without differential privacy (no clipping, no noise)."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--noise-seed", type=click.Choice(["derived", "os"]), default="derived", show_default=True,
                  help="Noise and batch sampling reproducible from --seed, or secret from OS entropy (for a "
                       "model meant for release)."),
    click.option("--noise", type=click.Choice(["numpy", "philox", "secure"]), default="numpy", show_default=True,
                 help="Gaussian sampler: NumPy's (reference), counter-based Philox kernels (the same bits for any "
                      "thread count and on the GPU), or secure (OS entropy, hardened against floating-point "
                      "attacks; implies --noise-seed os)."),
    click.option("--secure-noise", is_flag=True, help="For a model meant for release: --noise secure "
                                                       "--noise-seed os."),
    click.option("--threads", type=int, default=0, show_default=True, help="CPU threads (0 = all cores)."),
    click.option("--device", type=click.Choice(list(DEVICES)), default="cpu", show_default=True,
                 help="cpu (Numba), reference (plain NumPy, slower; every model option), cuda or auto."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Dataset folder [default: $NPDPSNN_DATA, else the user cache]."),
    click.option("--limit-train", type=int, default=None, help="Use only the first N training examples."),
    click.option("--accountant", type=click.Choice([*ANALYSES, *ALIASES, "all"]), default="all", show_default=True,
                  help="Accountants reported per epoch; the one used by --target-epsilon (all = rdp)."),
]


def config_options(f):
    """Decorate a command with :data:`_CONFIG_OPTIONS`."""
    for option in reversed(_CONFIG_OPTIONS):
        f = option(f)
    return f


@click.command("train")
@click.argument("dataset", required=False, type=click.Choice(DATASETS, case_sensitive=False))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder [default: runs/<hyperparameters>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Continue the run in this folder from its checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar or epoch lines.")
@click.option("--mechanism", type=click.Choice(["dp-sgd", "neuraldp"]), default="dp-sgd", show_default=True,
              help="DP-SGD (noise on gradients) or NeuralDP (noise on one layer's activations, without centring; "
                   "npdpsnn train-neuraldp has all of its options).")
@click.option("--privatize-layer", default=None, help="NeuralDP: the layer whose activations are privatised "
              "(1-based position or name, e.g. 4 or conv2).")
@click.option("--labels", type=click.Choice(["private", "public"]), default="private", show_default=True,
              help="NeuralDP: private labels (the head is trained with DP-SGD) or labels declared public.")
@click.option("--activation-clip", type=float, default=None, help="NeuralDP: bound C of each activation row.")
@config_options
@click.pass_context
def train(ctx: click.Context, dataset: str | None, **opts) -> None:
    """Train on DATASET (mnist, fashion-mnist, yaleb) with DP-SGD and report accuracy and epsilon.

    With --resume RUN the dataset is taken from the run's checkpoint."""
    try:
        _train(ctx, dataset.lower() if dataset else None, opts)
    except UserError as exc:  # the library names configuration fields; say which option sets each
        raise UserError(_with_flags(str(exc))) from None


def explicit_options(ctx: click.Context, opts: dict) -> set[str]:
    """The names of the options in ``opts`` given on the command line (not defaults)."""
    return {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}


def config_values(dataset: str, opts: dict, explicit: set[str]) -> dict:
    """The configuration fields (dotted) set by the options in ``opts``, with the
    preset's values (:mod:`npdpsnn.training.presets`) under the ``explicit``
    options and the dataset's defaults filled in (see
    :data:`npdpsnn.training.config.DATASET_DEFAULTS`)."""
    from npdpsnn.training.config import DATASET_DEFAULTS, default_physical_batch
    from npdpsnn.training.presets import apply_preset

    values = {FIELD_OF_OPTION[k]: v for k, v in opts.items() if k in FIELD_OF_OPTION}
    values["dp.enabled"] = not values["dp.enabled"]  # the option is --no-dp
    values["model.bias"] = not values["model.bias"]  # the option is --no-bias
    if opts.get("secure_noise"):
        values["dp.noise"], values["dp.noise_seed"] = "secure", "os"
    for path, default in DATASET_DEFAULTS[dataset].items():
        if values[path] is None:
            values[path] = default
    given = {FIELD_OF_OPTION[k] for k in explicit if k in FIELD_OF_OPTION}
    if "secure_noise" in explicit:
        given |= {"dp.noise", "dp.noise_seed"}
    values = apply_preset(values, dataset, given)
    if values["run.physical_batch"] is None:
        values["run.physical_batch"] = default_physical_batch(values["optim.batch_size"])
    return values


def _train_neuraldp(dataset, opts: dict, neuraldp: dict, out, resume_dir, data_dir, quiet: bool) -> None:
    """``--mechanism neuraldp``: the training options that apply, and the DP ones as NeuralDP's."""
    from npdpsnn.cli.neuraldp import _TRAIN_FIELDS, run_neuraldp

    if resume_dir is not None:
        raise UserError("--resume is not supported with --mechanism neuraldp (its features are released once)")
    if dataset is None:
        raise UserError("name the DATASET to train on (" + ", ".join(DATASETS) + ")")
    if neuraldp["neuraldp.layer"] is None:
        raise UserError("--mechanism neuraldp needs --privatize-layer K")
    if opts.get("preset") is not None:
        raise UserError("--preset names a DP-SGD recipe; it does not apply to --mechanism neuraldp")
    values = {field: opts[name] for name, field in _TRAIN_FIELDS.items() if opts.get(name) is not None}
    for name in ("sigma", "target_epsilon", "delta", "noise_seed", "accountant"):
        if opts.get(name) is not None and not (name == "accountant" and opts[name] == "all"):
            values[f"neuraldp.{name}"] = opts[name]
    values.update({k: v for k, v in neuraldp.items() if v is not None})
    values.setdefault("neuraldp.center", False)  # centring needs its own bound: see train-neuraldp
    run_neuraldp(dataset, values, out=out, data_dir=data_dir, quiet=quiet)


#: ``--mechanism neuraldp``'s own options and the NeuralDP fields they set.
NEURALDP_FIELD_OF_OPTION: dict[str, str] = {"privatize_layer": "neuraldp.layer", "labels": "neuraldp.labels",
                                            "activation_clip": "neuraldp.clip"}


def _flag_of_field() -> dict[str, str]:
    """``{config field: its option as typed}`` (``model.T`` -> ``-T``), from the command's own options."""
    fields = {**FIELD_OF_OPTION, **NEURALDP_FIELD_OF_OPTION}
    return {fields[p.name]: p.opts[0] for p in train.params if p.name in fields}


def _with_flags(message: str) -> str:
    """``message`` with configuration field names replaced by the options that set them."""
    import re

    for field_name, flag in sorted(_flag_of_field().items(), key=lambda kv: -len(kv[0])):
        if "." in field_name:  # whole names only: dp.clip, not the end of neuraldp.clip
            message = re.sub(rf"(?<![\w.]){re.escape(field_name)}(?![\w])", flag, message)
    return (message.replace("disable DP", "train without DP with --no-dp")
            .replace("use the reference backend (backend='reference')", "use --device reference"))


def _train(ctx: click.Context, dataset: str | None, opts: dict) -> None:
    from npdpsnn.data import load_dataset
    from npdpsnn.training.config import TrainConfig
    from npdpsnn.training.lock import RunLock
    from npdpsnn.training.recorder import RunRecorder
    from npdpsnn.training.resume import resume_config
    from npdpsnn.training.trainer import Trainer, open_resume

    quiet = opts.pop("quiet")
    out, resume_dir, data_dir = opts.pop("out"), opts.pop("resume"), opts.pop("data_dir")
    mechanism = opts.pop("mechanism")
    neuraldp = {field: opts.pop(name) for name, field in NEURALDP_FIELD_OF_OPTION.items()}
    if mechanism == "neuraldp":
        _train_neuraldp(dataset, opts, neuraldp, out, resume_dir, data_dir, quiet)
        return
    if neuraldp["neuraldp.layer"] is not None or neuraldp["neuraldp.clip"] is not None:
        raise UserError("--privatize-layer and --activation-clip need --mechanism neuraldp")
    state = None
    if resume_dir is not None:
        state = open_resume(resume_dir)
        saved = TrainConfig.from_dict(state.train_config)
        if dataset is not None and saved.dataset != dataset:
            raise UserError(f"cannot resume: the run in {resume_dir} trained on {saved.dataset}, not {dataset}")
        dataset = saved.dataset
    elif dataset is None:
        raise UserError("name the DATASET to train on (" + ", ".join(DATASETS) + ")")
    explicit = explicit_options(ctx, opts)
    values = config_values(dataset, opts, explicit)

    if resume_dir is not None:
        if out is not None and Path(out) != Path(resume_dir):
            raise UserError("--out and --resume name different folders")
        if "no_dp" in explicit and saved.dp.enabled:
            raise UserError("cannot resume: --no-dp conflicts with the checkpoint (trained with DP)")
        try:
            if "secure_noise" in explicit:
                explicit |= {"noise", "noise_seed"}
            cfg = resume_config(saved, {FIELD_OF_OPTION[k]: values[FIELD_OF_OPTION[k]] for k in explicit
                                        if k in FIELD_OF_OPTION})
        except UserError as exc:
            raise UserError(f"cannot resume: option {_with_flags(str(exc))}") from None
        if cfg.optim.epochs <= state.epoch:
            raise UserError(f"nothing to do: the run in {resume_dir} has completed {state.epoch} of "
                            f"{cfg.optim.epochs} epochs (raise --epochs to continue)")
        out = Path(resume_dir)
    else:
        if not values["dp.enabled"] and (values["dp.sigma"] is not None or values["dp.target_epsilon"] is not None):
            raise UserError("--no-dp cannot be combined with --sigma or --target-epsilon")
        if values["dp.sigma"] is not None and values["dp.target_epsilon"] is not None:
            raise UserError("give exactly one of --sigma and --target-epsilon")
        cfg = TrainConfig.from_values(dataset, values)
        if out is None:
            out = _default_out(cfg)
        elif (Path(out) / "checkpoint.h5").exists():
            raise UserError(f"{out} already holds a run; use --resume {out} to continue it or choose another --out")

    backend = _backend(cfg.run.device)
    _set_threads(cfg.run.threads)
    data = load_dataset(dataset, data_dir=data_dir, seed=cfg.run.split_seed)
    trainer = Trainer(cfg, data, backend=backend, resume=state)
    _check_out_dir(out)
    if not quiet:
        c = trainer.config
        m = c.model
        dp = f"DP-SGD sigma={c.dp.sigma:.4g} R={c.dp.clip:g} delta={c.dp.delta:g}" if c.dp.enabled else "no DP"
        spiking = f" neuron={m.neuron} surrogate={m.surrogate} T={m.T}" if m.kind == "snn" else ""
        recipe = f" | preset {c.preset}" if c.preset else ""
        click.echo(f"npdpsnn: {c.dataset} {m.kind} {c.spec}{spiking}{recipe} "
                   f"| {dp} | batch {c.optim.batch_size} ({c.dp.sampling}, q={trainer.sample_rate:.5g}) "
                   f"lr={c.optim.lr:g} | {trainer.n_train} train examples, {trainer.steps_per_epoch} steps/epoch | "
                   f"epochs {trainer.epoch + 1}..{c.optim.epochs} | {backend} | run folder {out}")
    # The first Ctrl-C / SIGTERM asks the trainer to stop at the next step boundary (never
    # inside a checkpoint write); a second one interrupts at once.
    stopper = _SignalStop()
    old = {sig: signal.signal(sig, stopper.request) for sig in (signal.SIGINT, signal.SIGTERM)}
    lock = RunLock(out)  # a second writer into this folder is refused
    try:
        lock.acquire()
        if state is None and (out / "checkpoint.h5").exists():  # another run finished an epoch meanwhile
            raise UserError(f"{out} already holds a run; use --resume {out} to continue it")
        result = trainer.fit([RunRecorder(out), _Progress(cfg.dp.enabled, cfg.dp.delta, quiet), stopper])
    except KeyboardInterrupt:
        _release(lock, out, trainer.epoch == 0 and state is None)
        if trainer.epoch == 0 and state is None:
            click.echo("\ninterrupted before the first epoch ended: nothing was saved", err=True)
        else:
            click.echo(f"\ninterrupted; the last complete checkpoint is in {out} (resume with --resume {out})",
                       err=True)
        sys.exit(130)
    except BaseException:
        _release(lock, out, trainer.epoch == 0 and state is None)
        raise
    finally:
        lock.release()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    summary = result.summary
    if not quiet:
        click.echo(f"test accuracy {summary['test_accuracy']:.4f} (best {summary['best_test_accuracy']:.4f} at epoch "
                   f"{summary['best_epoch']})")
        click.echo(summary["privacy_statement"])
        click.echo(f"records: {out}/summary.json, metrics.csv, checkpoint.h5 (private), model.h5 (weights only)")


class _SignalStop(Callback):
    """First signal: stop at the next step boundary; second: interrupt at once."""

    def __init__(self):
        self.requested = False

    def request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def should_stop(self, trainer) -> bool:
        return self.requested


def _release(lock, folder: Path, nothing_saved: bool) -> None:
    """Release the run folder's lock and, when the run saved nothing, remove the
    then empty folder (a run that failed before its first checkpoint)."""
    lock.release()
    if nothing_saved:
        try:
            folder.rmdir()
        except OSError:
            pass


def _backend(device: str) -> str:
    from npdpsnn.kernels.backend import resolve_device

    return resolve_device(device)


def _set_threads(threads: int) -> None:
    if threads:
        from npdpsnn.engine import default_engine

        default_engine().set_threads(threads)
