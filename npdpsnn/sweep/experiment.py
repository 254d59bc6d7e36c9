"""Experiment files: a base configuration plus a grid, in TOML.

An experiment file has up to four tables::

    [experiment]                 # all optional
    name = "table1"              # default: the file's stem
    description = "..."
    replicates = 1               # runs per grid point, seeds derived (see npdpsnn.sweep.plan)
    base_seed = 0                # root of the seed derivation
    seed_scope = "replicate"     # or "run" (see npdpsnn.sweep.plan)

    [base]                       # configuration fields, as in TrainConfig.from_values
    dataset = "mnist"
    net = "net2"
    "optim.epochs" = 60          # a quoted dotted key ...
    dp.clip = 1.5                # ... or a TOML dotted key / sub-table: the same

    [grid]                       # one axis per key: a list of values
    "model.kind" = ["snn", "ann"]
    "dp.sigma" = [1.6, 1.0]
    # a composite axis: a free name and a list of tables of fields (with an optional label)
    privacy = [{ label = "nodp", "dp.enabled" = false }, { "dp.sigma" = 1.0 }]

    [scales.smoke]               # named variants: base fields merged over [base],
    base = { "optim.epochs" = 2 }  # grid axes replacing (or adding) axes of [grid],
    grid = { "dp.sigma" = [1.0] }  # replicates replacing [experiment] replicates
    replicates = 1

Every key of ``base`` and every plain axis is a field of
:class:`~npdpsnn.training.config.TrainConfig` (``dataset``, ``net``,
``model.T``, ``dp.sigma``, ``optim.epochs``, ``run.limit_train`` ...).  The
file's own tables are the ``full`` scale; ``--scale full`` applies no
overrides unless the file defines ``[scales.full]``.  Every mistake is a
one-line :class:`~npdpsnn.errors.UserError` that names the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.training.config import DATASET_DEFAULTS, field_paths

__all__ = ["Axis", "Case", "Experiment", "SEED_SCOPES", "experiment_source", "load_experiment",
           "shipped_experiments"]

#: How run seeds are derived (see :func:`npdpsnn.sweep.plan.derive_seed`).
SEED_SCOPES: tuple[str, ...] = ("replicate", "run")

_TOP_KEYS = ("experiment", "base", "grid", "scales")
_EXPERIMENT_KEYS = ("name", "description", "replicates", "base_seed", "seed_scope")
_SCALE_KEYS = ("base", "grid", "replicates", "description")
_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SHIPPED = "npdpsnn.paper.experiments"


@dataclass(frozen=True)
class Case:
    """One value of a composite axis: several fields set together, under ``label``."""

    label: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Axis:
    """One grid axis: a configuration field and its values, or a free name and :class:`Case` values."""

    name: str
    values: tuple

    @property
    def composite(self) -> bool:
        return bool(self.values) and isinstance(self.values[0], Case)

    def fields(self) -> set[str]:
        """The configuration fields this axis sets."""
        if self.composite:
            return {k for case in self.values for k in case.values}
        return {self.name}


@dataclass(frozen=True)
class Experiment:
    """A validated experiment at one scale: ``base`` (dotted field -> value),
    ``axes`` in file order, ``replicates`` runs per grid point."""

    name: str
    source: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]
    replicates: int = 1
    base_seed: int = 0
    seed_scope: str = "replicate"
    scale: str | None = None
    scales: tuple[str, ...] = ()
    description: str = ""
    text: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        """``name`` or ``name-scale``: the default folder name of a sweep."""
        return self.name if self.scale is None else f"{self.name}-{self.scale}"


# ------------------------------------------------------------------ public
def shipped_experiments() -> tuple[str, ...]:
    """Names of the experiment files shipped with the package (``table1`` ... ``fig6``)."""
    folder = resources.files(_SHIPPED)
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def experiment_source(name_or_path: str | Path) -> tuple[str, str]:
    """``(text, where)`` of an experiment: a file path, or the name of a shipped experiment."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read experiment file {path}: {exc}") from None
    name = str(name_or_path)
    if name in shipped_experiments():
        res = resources.files(_SHIPPED) / f"{name}.toml"
        return res.read_text(encoding="utf-8"), f"{name}.toml (shipped)"
    if path.exists():
        raise UserError(f"experiment {path} is not a file")
    raise UserError(f"no experiment file {name_or_path!r} (not a file, nor a shipped experiment: "
                    f"{', '.join(shipped_experiments())})")


def load_experiment(name_or_path: str | Path, scale: str | None = None) -> Experiment:
    """Read and validate an experiment file (or a shipped experiment by name) at ``scale``."""
    text, where = experiment_source(name_or_path)
    stem = Path(str(name_or_path)).name.removesuffix(".toml")
    return parse_experiment(text, where, scale, default_name=stem)


def parse_experiment(text: str, where: str, scale: str | None = None, default_name: str = "experiment") -> Experiment:
    """Validate the TOML ``text`` (``where`` names it in errors) at ``scale``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    _only_keys(doc, _TOP_KEYS, where, "")
    head = _table(doc, "experiment", where)
    _only_keys(head, _EXPERIMENT_KEYS, where, "experiment.")
    name = head.get("name", default_name)
    if not isinstance(name, str) or not _AXIS_NAME.match(name):
        raise UserError(f"{where}: experiment.name must be a name of letters, digits, '_' and '-', got {name!r}")
    description = _string(head.get("description", ""), where, "experiment.description")
    replicates = _integer(head.get("replicates", 1), where, "experiment.replicates", 1)
    base_seed = _integer(head.get("base_seed", 0), where, "experiment.base_seed", 0)
    seed_scope = head.get("seed_scope", "replicate")
    if seed_scope not in SEED_SCOPES:
        raise UserError(f"{where}: experiment.seed_scope must be one of {', '.join(SEED_SCOPES)}, got {seed_scope!r}")

    base = _base(_table(doc, "base", where), where, "base")
    axes = _axes(_table(doc, "grid", where), where, "grid")
    scales_doc = _table(doc, "scales", where)
    overrides = {key: _scale(value, where, f"scales.{key}") for key, value in scales_doc.items()}
    scales = tuple(scales_doc)
    if scale in overrides:
        over_base, over_axes, over_replicates = overrides[scale]
        base = {**base, **over_base}
        replaced = {a.name: a for a in over_axes}
        axes = tuple(replaced.pop(a.name, a) for a in axes) + tuple(replaced.values())
        replicates = over_replicates or replicates
    elif scale is not None and scale != "full":
        known = ", ".join([*scales, *([] if "full" in scales else ["full"])])
        raise UserError(f"{where}: no scale {scale!r} (scales: {known})")
    _check_fields(base, axes, replicates, where)
    return Experiment(name=name, source=where, base=base, axes=axes, replicates=replicates, base_seed=base_seed,
                      seed_scope=seed_scope, scale=scale, scales=scales, description=description, text=text)


# ------------------------------------------------------------------ helpers
def _only_keys(d: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in d:
        if key not in allowed:
            raise UserError(f"{where}: unknown key {prefix}{key} (allowed: {', '.join(allowed)})")


def _table(d: dict, key: str, where: str, prefix: str = "") -> dict:
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: {prefix}{key} must be a table")
    return value


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _integer(value: Any, where: str, key: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise UserError(f"{where}: {key} must be an integer >= {lo}, got {value!r}")
    return value


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"dp": {"sigma": 1}}`` -> ``{"dp.sigma": 1}`` (quoted dotted keys pass through)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _field(path: str, where: str, key: str) -> str:
    if path not in field_paths() or path == "spec":
        raise UserError(f"{where}: {key} is not a configuration field (fields: {', '.join(_public_fields())})")
    return path


def _public_fields() -> list[str]:
    return [p for p in field_paths() if p != "spec"]


def _scalar(value: Any, where: str, key: str) -> Any:
    if isinstance(value, (list, dict)) or not isinstance(value, (str, int, float, bool)):
        raise UserError(f"{where}: {key} must be a string, number or boolean, got {value!r}")
    return value


def _base(d: dict, where: str, prefix: str) -> dict[str, Any]:
    return {_field(path, where, f"{prefix}.{path}"): _scalar(value, where, f"{prefix}.{path}")
            for path, value in _flatten(d).items()}


def _axes(d: dict, where: str, prefix: str) -> tuple[Axis, ...]:
    axes = []
    for name, values in _axis_items(d):
        key = f"{prefix}.{name}"
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: {key} must be a non-empty list of values")
        if all(isinstance(v, dict) for v in values):
            if not _AXIS_NAME.match(name) or name in field_paths():
                raise UserError(f"{where}: {key}: a list of tables needs a free axis name (letters, digits, '_', "
                                f"'-'; not a configuration field)")
            cases = tuple(_case(v, where, f"{key}[{i}]") for i, v in enumerate(values))
            _distinct([c.label for c in cases], where, f"{key} labels")
            axes.append(Axis(name, cases))
        else:
            _field(name, where, key)
            axes.append(Axis(name, tuple(_scalar(v, where, f"{key}[{i}]") for i, v in enumerate(values))))
            _distinct(list(axes[-1].values), where, key)
    return tuple(axes)


def _axis_items(d: dict, prefix: str = ""):
    """``(name, values)`` per axis; sub-tables nest dotted names (``[grid.dp] sigma = [...]``)."""
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _axis_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _case(d: dict, where: str, key: str) -> Case:
    values = _flatten({k: v for k, v in d.items() if k != "label"})
    if not values:
        raise UserError(f"{where}: {key} sets no field")
    fields_ = {_field(p, where, f"{key}.{p}"): _scalar(v, where, f"{key}.{p}") for p, v in values.items()}
    label = d.get("label", "_".join(f"{p.rsplit('.', 1)[-1]}-{v}" for p, v in fields_.items()))
    return Case(_string(label, where, f"{key}.label"), fields_)


def _scale(d: Any, where: str, key: str) -> tuple[dict[str, Any], tuple[Axis, ...], int | None]:
    """A scale's ``(base, axes, replicates or None)``, validated whether or not it is used."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: {key} must be a table")
    _only_keys(d, _SCALE_KEYS, where, f"{key}.")
    _string(d.get("description", ""), where, f"{key}.description")
    replicates = _integer(d["replicates"], where, f"{key}.replicates", 1) if "replicates" in d else None
    return (_base(_table(d, "base", where, f"{key}."), where, f"{key}.base"),
            _axes(_table(d, "grid", where, f"{key}."), where, f"{key}.grid"), replicates)


def _distinct(values: list, where: str, key: str) -> None:
    seen = [repr(v) for v in values]
    if len(set(seen)) != len(seen):
        raise UserError(f"{where}: {key} repeats a value")


def _check_fields(base: dict, axes: tuple[Axis, ...], replicates: int, where: str) -> None:
    names = [a.name for a in axes]
    _distinct(names, where, "grid axis names")
    owner: dict[str, str] = {}
    for axis in axes:
        for f in axis.fields():
            if f in owner:
                raise UserError(f"{where}: {f} is set by two grid axes ({owner[f]} and {axis.name})")
            owner[f] = axis.name
    datasets = [base["dataset"]] if "dataset" in base and "dataset" not in owner else []
    for axis in axes:
        for value in axis.values:
            if isinstance(value, Case) and "dataset" in value.values:
                datasets.append(value.values["dataset"])
            elif axis.name == "dataset":
                datasets.append(value)
    if "dataset" not in base and "dataset" not in owner:
        raise UserError(f"{where}: base.dataset is required (or a dataset grid axis)")
    for ds in datasets:
        if ds not in DATASET_DEFAULTS:
            raise UserError(f"{where}: dataset must be one of {', '.join(DATASET_DEFAULTS)}, got {ds!r}")
    if replicates > 1 and ("run.seed" in base or "run.seed" in owner):
        raise UserError(f"{where}: give either run.seed or experiment.replicates > 1, not both")
