"""The guard on NeuralDP's lower layers: refuse a run whose guarantee would not hold.

The released noisy rows protect the examples only if the computation that made
them -- layers ``0..K`` -- did not itself look at the private data without DP.
Three provenances are accepted (:class:`LowerLayers`):

* ``"init"``: the data-independent initialisation drawn from the run's seed
  (checked: the weights must equal it);
* ``"public"``: trained on public data, whose name the user gives
  (``public_source``; it may not be the private data set itself);
* ``"dp-sgd"``: trained with DP-SGD on the private data; its ledger event
  (add/remove) is required and is composed into the NeuralDP ledger.

Refused with :class:`PrivacyAssumptionError`: ``trainable=True`` (NeuralDP would
update layers at or below ``K`` from raw examples, before any noise), any other
source (e.g. ``"private"``: trained on the private data without DP), a
``dp-sgd`` ledger with a non-private phase, and -- checked after training by
:func:`check_unchanged` -- any change of those weights during the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from npdpsnn.errors import UserError
from npdpsnn.network import Network
from npdpsnn.neuraldp.features import LayerSplit, lower_digest
from npdpsnn.privacy.accountants.analyses import replace_one_parts
from npdpsnn.privacy.events import DpEvent, NonPrivateEvent, flatten

__all__ = ["LOWER_SOURCES", "LowerLayers", "PrivacyAssumptionError", "check_lower_layers", "check_unchanged"]

#: Accepted provenances of the layers at and below the privatised one.
LOWER_SOURCES: tuple[str, ...] = ("init", "public", "dp-sgd")


class PrivacyAssumptionError(UserError):
    """An assumption of the NeuralDP guarantee would be violated."""


@dataclass(frozen=True)
class LowerLayers:
    """Where the weights of layers ``0..K`` come from (``source``), whether the
    run may train them (``trainable``), the public data set they were trained on
    (``public_source``) or their DP-SGD ledger (``ledger_event``)."""

    source: str = "init"
    trainable: bool = False
    public_source: str | None = None
    ledger_event: DpEvent | None = None


def check_lower_layers(lower: LowerLayers, split: LayerSplit, encoder: Network, *, dataset: str, seed: int) -> None:
    """Raise :class:`PrivacyAssumptionError` unless layers ``0..K`` of ``encoder``
    fit the guarantee (module docstring); ``dataset`` is the private data set's
    name, ``seed`` the run's initialisation seed."""
    names = ", ".join(split.lower_weight_names)
    if lower.trainable:
        raise PrivacyAssumptionError(
            f"layers {names} (at or below the privatised layer {split.layer.token!r}) would be trained on the "
            "private data without DP: their gradients come from raw examples before any noise, which no "
            "NeuralDP release covers; freeze them (initialisation, public data, or DP-SGD with its ledger)")
    if lower.source not in LOWER_SOURCES:
        raise PrivacyAssumptionError(
            f"layers {names} come from {lower.source!r}, which the guarantee does not cover; they must be the "
            f"data-independent initialisation, trained on public data, or trained with DP-SGD "
            f"({', '.join(LOWER_SOURCES)})")
    if lower.source == "init":
        fresh = Network(encoder.spec, encoder.input_shape, encoder.config, seed=seed)
        if lower_digest(fresh, split) != lower_digest(encoder, split):
            raise PrivacyAssumptionError(
                f"layers {names} are not the initialisation drawn from seed {seed}; say where their weights come "
                "from (lower source 'public' with the public data set's name, or 'dp-sgd' with its ledger)")
    elif lower.source == "public":
        src = (lower.public_source or "").strip()
        if not src:
            raise PrivacyAssumptionError("lower layers trained on public data: name the public data set "
                                         "(public_source)")
        if src.lower() == dataset.strip().lower():
            raise PrivacyAssumptionError(f"the lower layers were trained on {src!r}, the private data set itself; "
                                         "that is not public data (use 'dp-sgd' with the ledger of that training)")
    else:
        _check_dp_ledger(lower.ledger_event)


def check_unchanged(digest: str, net: Network, split: LayerSplit) -> None:
    """Raise :class:`PrivacyAssumptionError` if layers ``0..K`` changed since ``digest``."""
    if lower_digest(net, split) != digest:
        raise PrivacyAssumptionError(f"layers {', '.join(split.lower_weight_names)} changed during the NeuralDP "
                                     "run; they must stay frozen")


def _check_dp_ledger(event: DpEvent | None) -> None:
    if event is None:
        raise PrivacyAssumptionError("lower layers trained with DP-SGD on the private data: pass that training's "
                                     "privacy ledger event, which is composed into the NeuralDP ledger")
    if any(isinstance(atom, NonPrivateEvent) for atom, _ in flatten(event)):
        raise PrivacyAssumptionError("the lower layers' ledger has a non-private phase: they saw the private data "
                                     "without DP")
    if replace_one_parts(event) is not None:
        raise PrivacyAssumptionError("the lower layers' ledger must hold their DP-SGD (add/remove) events")
