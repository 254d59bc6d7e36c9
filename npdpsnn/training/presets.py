"""Named training recipes (``--preset``): sets of configuration values, as data.

A preset fills configuration fields *under* the values a user names: in
``npdpsnn train mnist --preset tuned --epochs 30`` the preset sets the batch
size, learning rate, momentum and weight averaging, and ``--epochs 30`` wins
over its epoch count.  The preset's name is kept in ``config.json``
(``preset``) so a run says which recipe it followed; every value it set is
recorded beside it, as for any run.

``paper``
    The DPSNN paper's settings (Wang et al. 2022, section 4): the library's
    defaults (:mod:`npdpsnn.training.config`: SGD lr 0.25 without momentum,
    R = 1.5, Poisson batches, IF neurons, gate surrogate, T = 5, V_th = 0.5)
    and the dataset's (:data:`~npdpsnn.training.config.DATASET_DEFAULTS`:
    batch, epochs, clipping norm, network).  Written out field by field from
    those defaults, so a run with ``--preset paper`` keeps the paper's recipe
    even where a default changes.
``tuned``
    The recipe chosen on a validation split (``docs/results/accuracy/``:
    one-factor probes, then whole runs at the paper's epsilon): momentum 0.9,
    batch 1000, 20 epochs, lr 0.1 and an exponential moving average of the
    weights (decay 0.995).  At a fixed epsilon (``--target-epsilon``) the
    larger batch costs no privacy: sigma is calibrated for it.

Presets set no privacy parameter (sigma, target epsilon, delta): a user names
the privacy level; a recipe only says how to train under it.
"""

from __future__ import annotations

from typing import Any

from npdpsnn.errors import UserError
from npdpsnn.training.config import DATASET_DEFAULTS, PRESETS, TrainConfig

#: The ``tuned`` recipe's values (the same for every dataset it names).
_TUNED = {"optim.batch_size": 1000, "optim.epochs": 20, "optim.lr": 0.1, "optim.momentum": 0.9,
          "optim.lr_schedule": "constant", "optim.ema": 0.995}

#: Values of each preset (:data:`~npdpsnn.training.config.PRESETS` names them) that do not
#: come from the library's defaults, per dataset it has a recipe for.
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"mnist": {}, "fashion-mnist": {}, "yaleb": {}},
    "tuned": {"mnist": _TUNED, "fashion-mnist": _TUNED},
}
if tuple(RECIPES) != PRESETS:
    raise ImportError("npdpsnn.training.presets: RECIPES must hold exactly the presets config.PRESETS names")

#: The fields the ``paper`` preset writes out from the defaults: every training knob of the paper.
PAPER_FIELDS: tuple[str, ...] = (
    "net", "model.neuron", "model.surrogate", "model.T", "model.threshold", "model.leak", "model.detach_reset",
    "model.reset", "model.thresholds", "model.encoding", "model.bias", "dp.clip", "dp.clipping", "dp.sampling",
    "dp.augment_mult", "optim.lr", "optim.momentum", "optim.batch_size", "optim.epochs", "optim.lr_schedule",
    "optim.ema", "optim.init_gain",
)


def preset_values(name: str, dataset: str) -> dict[str, Any]:
    """The dotted configuration values the preset ``name`` sets for ``dataset``."""
    if not isinstance(name, str) or name not in RECIPES:
        raise UserError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}")
    per_dataset = RECIPES[name]
    if dataset not in per_dataset:
        raise UserError(f"the {name} preset has no recipe for {dataset} (it has one for {', '.join(per_dataset)})")
    if name == "paper":
        defaults = TrainConfig.from_values(dataset, {**DATASET_DEFAULTS[dataset], "dp.enabled": False})
        return {path: defaults.get(path) for path in PAPER_FIELDS}
    return dict(per_dataset[dataset])


def apply_preset(values: dict[str, Any], dataset: str, given: set[str] | frozenset[str]) -> dict[str, Any]:
    """``values`` (dotted) with the fields of the preset ``values["preset"]``
    set, except those in ``given`` (the values a user named, which win).
    Without a preset, ``values`` unchanged."""
    name = values.get("preset")
    if name is None:
        return dict(values)
    return {**values, **{k: v for k, v in preset_values(name, dataset).items() if k not in given}}
