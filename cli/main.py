"""Entry point: the ``npdpsnn`` command group.

Every error is one line on stderr and a non-zero exit, never a traceback:
user errors (:class:`npdpsnn.errors.UserError`) and click's usage errors exit
with status 2, operating-system errors (a path too long, a disk that fails)
with 2, an interrupt with 130.  ``-v`` / ``-vv`` may stand anywhere on the
command line (``-q`` too: only errors); warnings go through :mod:`logging`, so
NumPy's appear only at ``-v`` and never beside an error line.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start_up(signum, frame) -> None:
    """Ctrl-C while the program is still starting: one line, nothing to clean up."""
    sys.stderr.write("Error: interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_at_start_up)  # until a command runs (see _Group.main)

import logging  # noqa: E402

import click  # noqa: E402

from npdpsnn import __version__  # noqa: E402
from npdpsnn.errors import UserError  # noqa: E402

_VERBOSE = {"-v": 1, "-vv": 2, "-vvv": 2, "--verbose": 1}


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class _Group(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        head, sep, tail = (args[: args.index("--")], ["--"], args[args.index("--") + 1 :]) if "--" in args \
            else (args, [], [])
        verbose = sum(_VERBOSE.get(a, 0) for a in head)
        quiet = "-q" in head
        args = [a for a in head if a not in _VERBOSE and a != "-q"] + sep + tail
        if quiet and "--quiet" not in args and args[:1] == ["train"]:
            args.insert(1, "--quiet")  # train's own option: no progress or epoch lines
        _configure_logging(-1 if quiet else verbose)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on: KeyboardInterrupt, caught below
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), 2)
        except UserError as exc:
            _fail(str(exc), 2)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            _fail(f"{where}{exc.strerror or exc}", 2)
        except (KeyboardInterrupt, click.exceptions.Abort):
            _fail("interrupted", 130)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


def _configure_logging(verbose: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.captureWarnings(True)
    # library warnings (e.g. NumPy's overflow warnings at limits the code handles) only at -v
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose > 0 else logging.ERROR)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="npdpsnn")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug); allowed anywhere.")
@click.option("-q", "quiet", is_flag=True, help="Only errors (and, for train, no progress); allowed anywhere.")
def main(verbose: int, quiet: bool) -> None:
    """Differentially private spiking neural networks (DPSNN) in NumPy + Numba."""


def _register() -> None:
    import importlib

    for mod_name, cmd_name in (("npdpsnn.cli.privacy", "privacy"), ("npdpsnn.cli.train", "train"),
                               ("npdpsnn.cli.eval", "eval_cmd"), ("npdpsnn.cli.runs", "runs"),
                               ("npdpsnn.cli.export", "export"), ("npdpsnn.cli.sweep", "sweep"),
                               ("npdpsnn.cli.plot", "plot"), ("npdpsnn.cli.reproduce", "reproduce"),
                               ("npdpsnn.cli.audit", "audit"), ("npdpsnn.cli.neuraldp", "train_neuraldp"),
                               ("npdpsnn.cli.predict", "predict"), ("npdpsnn.cli.convert", "convert"),
                               ("npdpsnn.cli.leakage", "leakage")):
        main.add_command(getattr(importlib.import_module(mod_name), cmd_name))


_register()
