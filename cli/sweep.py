"""``npdpsnn sweep FILE``: run every configuration of an experiment file, resumably.

Also the executor options and the progress display that ``npdpsnn reproduce`` shares.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from pathlib import Path

import click

from npdpsnn.errors import UserError

_EXECUTOR_OPTIONS = ("workers", "scheduler", "scheduler_file", "dask_local", "threads")


def executor_options(command):
    """The options that choose where the runs execute (serial by default)."""
    options = [
        click.option("--workers", type=int, default=None,
                     help="Run N runs at a time in a local process pool (each with cores/N kernel threads)."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Run on a Dask cluster, e.g. tcp://HOST:8786 (needs npdpsnn[dask])."),
        click.option("--scheduler-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Run on the Dask cluster described by this scheduler file."),
        click.option("--dask-local", type=int, default=None, metavar="N",
                     help="Start a local Dask cluster of N worker processes and run on it."),
        click.option("--threads", type=int, default=0, show_default=True,
                     help="Kernel threads per run (0 = cores / concurrent runs)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Dataset folder [default: $NPDPSNN_DATA, else the user cache]."),
    ]
    return functools.reduce(lambda cmd, opt: opt(cmd), reversed(options), command)


def make_executor(opts: dict):
    """The executor the options ask for (pops them from ``opts``)."""
    from npdpsnn.sweep.executors import ProcessPoolSweepExecutor, SerialExecutor

    workers, scheduler, scheduler_file, dask_local, threads = (opts.pop(k) for k in _EXECUTOR_OPTIONS)
    chosen = [name for name, v in (("--workers", workers), ("--scheduler", scheduler),
                                   ("--scheduler-file", scheduler_file), ("--dask-local", dask_local)) if v is not None]
    if len(chosen) > 1:
        raise UserError(f"give at most one of --workers, --scheduler, --scheduler-file, --dask-local (got "
                        f"{', '.join(chosen)})")
    if threads < 0:
        raise UserError(f"--threads must be >= 0, got {threads}")
    for name, value in (("--workers", workers), ("--dask-local", dask_local)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if workers is not None:
        return ProcessPoolSweepExecutor(workers, threads)
    if chosen:
        from npdpsnn.sweep.dask_executor import DaskExecutor

        return DaskExecutor(scheduler=scheduler, scheduler_file=scheduler_file, local_workers=dask_local,
                            threads=threads)
    return SerialExecutor(threads)


class ProgressDisplay:
    """On stderr: one progress bar on a terminal, else one line per finished run."""

    def __init__(self, quiet: bool = False):
        self.tty = sys.stderr.isatty()
        self.quiet = quiet

    def __call__(self, progress, name, result, error) -> None:
        if self.quiet:
            return
        if self.tty:
            last = ""
            if name is not None:
                last = "  last: " + progress.run_line(name, result, error, eta=False).split("] ", 1)[1]
            line = (progress.bar() + last)[: max(20, _columns() - 1)]
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            if progress.remaining == 0:
                sys.stderr.write("\n")
        elif name is None:
            click.echo(f"{progress.total} runs: {progress.skipped} already finished, {progress.remaining} to run",
                       err=True)
        else:
            click.echo(progress.run_line(name, result, error), err=True)


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


@contextlib.contextmanager
def executor_from(opts: dict):
    """The executor of the options, closed at the end.  SIGTERM interrupts like
    Ctrl-C (so worker processes are stopped too); after an interrupt, says how to resume."""
    executor = make_executor(opts)
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield executor
    except KeyboardInterrupt:
        click.echo("\ninterrupted: run the same command again to resume (finished runs are kept, interrupted "
                   "ones continue from their last complete epoch)", err=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
        executor.close()


@click.command("sweep")
@click.argument("experiment_file", metavar="FILE")
@click.option("--scale", default=None, help="A scale the file defines (tiny, smoke, full ...) [default: the file as "
              "written, i.e. full].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep folder [default: sweeps/<experiment>[-<scale>]].")
@executor_options
@click.option("--quiet", is_flag=True, help="No progress output.")
def sweep(experiment_file: str, scale: str | None, out: Path | None, quiet: bool, **opts) -> None:
    """Run the experiment FILE (a TOML file, or a shipped one: table1..table4, fig3..fig6).

    Runs already finished are skipped and interrupted ones resume from their
    checkpoint, so the same command continues a sweep after a crash or Ctrl-C.
    Writes results.csv and results.json (one row per run) into the sweep folder."""
    from npdpsnn.sweep import load_experiment, run_sweep

    experiment = load_experiment(experiment_file, scale)
    folder = out if out is not None else Path("sweeps") / experiment.label
    data_dir = opts.pop("data_dir")

    with executor_from(opts) as executor:
        if not quiet:
            click.echo(f"npdpsnn sweep: {experiment.name}" + (f" (scale {scale})" if scale else "")
                       + f" | {executor.description} | folder {folder}", err=True)
        outcome = run_sweep(experiment, folder, executor, data_dir, ProgressDisplay(quiet))
    counts = {s: list(outcome.status.values()).count(s) for s in ("trained", "resumed", "finished")}
    click.echo(f"{len(outcome.rows)} of {len(outcome.runs)} runs finished ({counts['trained']} trained, "
               f"{counts['resumed']} resumed, {counts['finished']} already done); results: {outcome.results_csv}, "
               f"{outcome.results_json}")
    outcome.check()
