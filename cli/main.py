"""Entry point: the ``npdpsnn`` command group.

User errors (:class:`npdpsnn.errors.UserError`) are printed as one line on
stderr with exit status 2 and no traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from npdpsnn import __version__
from npdpsnn.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="npdpsnn")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Differentially private spiking neural networks (DPSNN) in NumPy + Numba."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    import importlib

    for mod_name, cmd_name in (("npdpsnn.cli.privacy", "privacy"), ("npdpsnn.cli.train", "train"), ("npdpsnn.cli.eval", "eval_cmd")):
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:  # command not built yet
            if exc.name != mod_name:
                raise
            continue
        main.add_command(getattr(mod, cmd_name))


_register()
