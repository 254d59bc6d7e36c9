"""``npdpsnn runs [DIR]`` and ``npdpsnn runs --compare A B``: what was run, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(rows: list[dict]) -> str:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols).rstrip()]
    lines += ["  ".join(_fmt(r[c]).ljust(width[c]) for c in cols).rstrip() for r in rows]
    return "\n".join(lines)


@click.command("runs")
@click.argument("folder", required=False, type=click.Path(path_type=Path), default=Path("runs"))
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), default=None, metavar="A B",
              help="Show how two runs differ (settings and results).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(folder: Path, compare, as_json: bool) -> None:
    """List the runs below FOLDER (default: runs/): dataset, model, options, epochs, accuracy, epsilon."""
    from npdpsnn.training.run_folders import compare_runs, find_runs, read_run

    if compare:
        a, b = (read_run(p) for p in compare)
        diff = compare_runs(a, b)
        if as_json:
            click.echo(json.dumps({"a": str(a.path), "b": str(b.path), "config": diff["config"],
                                   "results": diff["results"]}))
            return
        click.echo(f"A = {a.path}\nB = {b.path}")
        rows = [{"": k, "A": va, "B": vb} for part in ("config", "results") for k, (va, vb) in diff[part].items()]
        click.echo(_table(rows) if rows else "no differences")
        return
    found = find_runs(folder)
    if as_json:
        click.echo(json.dumps([r.row() for r in found]))
    elif not found:
        click.echo(f"no runs in {folder}")
    else:
        click.echo(_table([r.row() for r in found]))
