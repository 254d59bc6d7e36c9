"""Expanding an experiment's grid into runs: their values, folder names and seeds.

**Values.**  For each grid point (the Cartesian product of the axes, first axis
slowest) and replicate, a run's configuration is, from weakest to strongest:
the dataset's defaults (:data:`~npdpsnn.training.config.DATASET_DEFAULTS`),
the values of the run's ``preset`` if it names one (:mod:`npdpsnn.training.presets`),
``run.physical_batch`` from :func:`~npdpsnn.training.config.default_physical_batch`
(as ``npdpsnn train`` does; the results do not depend on it), the experiment's ``base``, the grid point, and
the derived seed.

**Folder names** are the grid point written out, one ``key-value`` token per
axis in file order and ``rep-R`` last, e.g. ``kind-snn_sigma-1.6_rep-0``
(``key`` is the last part of the field's dotted name unless two axes share it;
a composite axis contributes its case label).  They depend on the run's own
values only, so growing the grid never renames an existing run.

**Seeds.**  Unless the experiment fixes ``run.seed``, replicate ``r`` gets the
seed ``SeedSequence(base_seed).spawn(r + 1)[r].generate_state(1)[0]``, i.e.
the first 32-bit word of the child ``SeedSequence(base_seed, spawn_key=(r,))``
(``seed_scope = "replicate"``, the default): every grid point of one
replicate shares it, so SNN and ANN, or two noise levels, start from the same
initialisation and see the same batches (paired comparisons).  With
``seed_scope = "run"`` the spawn key also holds four 32-bit words of the
SHA-256 of the run's grid point (canonical JSON of ``{axis: value}``), giving
every run its own seed.  Either way a seed depends on ``base_seed``, ``r`` and
the run's own grid values only: adding axis values or replicates never changes
the seed of an existing run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npdpsnn.errors import UserError
from npdpsnn.sweep.experiment import Case, Experiment
from npdpsnn.training.config import DATASET_DEFAULTS, default_physical_batch, TrainConfig
from npdpsnn.training.presets import apply_preset

__all__ = ["PlannedRun", "derive_seed", "plan_runs"]

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: ``name`` (its folder under ``runs/``), ``replicate``,
    ``grid`` (axis -> value, or the case label of a composite axis),
    ``values`` (every dotted field set) and the validated ``config``."""

    name: str
    replicate: int
    grid: dict[str, Any]
    values: dict[str, Any]
    config: TrainConfig

    def folder(self, sweep_dir: str | Path) -> Path:
        return Path(sweep_dir) / "runs" / self.name


def plan_runs(experiment: Experiment) -> list[PlannedRun]:
    """Every run of ``experiment``, its configuration validated (errors name the run)."""
    keys = _axis_keys(experiment)
    runs: list[PlannedRun] = []
    for point in itertools.product(*(axis.values for axis in experiment.axes)):
        grid, fields = {}, {}
        for axis, value in zip(experiment.axes, point):
            if isinstance(value, Case):
                grid[axis.name] = value.label
                fields.update(value.values)
            else:
                grid[axis.name] = value
                fields[axis.name] = value
        tokens = [f"{keys[axis.name]}-{_text(grid[axis.name])}" for axis in experiment.axes]
        for r in range(experiment.replicates):
            name = "_".join([*tokens, f"rep-{r}"])
            values = {**experiment.base, **fields}
            if "run.seed" not in values:
                values["run.seed"] = derive_seed(experiment.base_seed, r, experiment.seed_scope, grid)
            runs.append(PlannedRun(name, r, grid, values, _config(values, experiment.source, name)))
    _unique([r.name for r in runs], experiment.source)
    return runs


def derive_seed(base_seed: int, replicate: int, scope: str = "replicate", grid: dict | None = None) -> int:
    """The ``run.seed`` of replicate ``replicate`` (see the module docstring)."""
    if scope == "replicate":
        child = np.random.SeedSequence(base_seed).spawn(replicate + 1)[replicate]
    else:
        digest = hashlib.sha256(json.dumps(grid or {}, sort_keys=True).encode()).digest()
        words = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
        child = np.random.SeedSequence(base_seed, spawn_key=(replicate, *words))
    return int(child.generate_state(1)[0])


# ------------------------------------------------------------------ helpers
def _axis_keys(experiment: Experiment) -> dict[str, str]:
    """Short folder-name key per axis: the last dotted part, or the full name where two would clash."""
    short = {a.name: a.name.rsplit(".", 1)[-1] for a in experiment.axes}
    clash = {k for k in short.values() if list(short.values()).count(k) > 1}
    return {name: _safe(name if key in clash else key) for name, key in short.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _safe(repr(value) if isinstance(value, float) else str(value))


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "_"


def _config(values: dict[str, Any], where: str, name: str) -> TrainConfig:
    dataset = values.get("dataset")
    defaults = dict(DATASET_DEFAULTS[dataset])
    try:
        values = apply_preset(values, dataset, given=set(values))  # the run's own values win over its preset
        batch = values.get("optim.batch_size", defaults["optim.batch_size"])
        full = {**defaults, "run.physical_batch": default_physical_batch(batch) if isinstance(batch, int) else batch,
                **values}
        full.pop("dataset")
        return TrainConfig.from_values(dataset, full)
    except UserError as exc:
        raise UserError(f"{where}: run {name}: {exc}") from None
    except TypeError as exc:  # a field given the wrong kind of value deep in a constructor
        raise UserError(f"{where}: run {name}: {exc}") from None


def _unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise UserError(f"{where}: two runs would share the folder name {n!r}; give the values distinct labels")
        seen.add(n)
