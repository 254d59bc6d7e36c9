"""NeuralDP: privatise the activations of one layer instead of the gradients (Knolle et al. 2021).

The per-example output of a layer ``K`` of a frozen network (SNN: spike counts
over the time window; ANN: activations) is bounded to L2 norm ``C`` and
released once with Gaussian noise ``N(0, sigma^2 C^2 I)``; the layers above
are trained on the released rows.  The guarantee is replace-one DP
(sensitivity ``2C``) and rests on assumptions that this package checks and
states: the layers at and below ``K`` are the data-independent
initialisation, trained on public data, or trained with DP-SGD (whose ledger
is composed in); the labels are either declared public or used only by DP-SGD
on the head.

Modules: :mod:`.features` (layer-``K`` features, the network cut),
:mod:`.release` (bounding, noise, the DP centre, the backward pass),
:mod:`.accounting` (the argument, the ledger events, calibration),
:mod:`.guard` (the lower layers' provenance), :mod:`.statement` (the
guarantee in words), :mod:`.config`, :mod:`.fit` (:func:`fit_neuraldp`),
:mod:`.model` (the released model), :mod:`.canary_audit` (one-run audit with
input canaries), :mod:`.compare` (NeuralDP vs DP-SGD at equal epsilon).
"""

from __future__ import annotations

from npdpsnn.neuraldp.accounting import PrivacyReport, neuraldp_event, privacy_report
from npdpsnn.neuraldp.config import NeuralDPConfig, NeuralDPSettings
from npdpsnn.neuraldp.features import FeatureCache, LayerSplit, layer_features, split_at
from npdpsnn.neuraldp.fit import NeuralDPResult, fit_neuraldp
from npdpsnn.neuraldp.guard import LowerLayers, PrivacyAssumptionError
from npdpsnn.neuraldp.model import NeuralDPModel, load_neuraldp_model

__all__ = [
    "FeatureCache",
    "LayerSplit",
    "LowerLayers",
    "NeuralDPConfig",
    "NeuralDPModel",
    "NeuralDPResult",
    "NeuralDPSettings",
    "PrivacyAssumptionError",
    "PrivacyReport",
    "fit_neuraldp",
    "layer_features",
    "load_neuraldp_model",
    "neuraldp_event",
    "privacy_report",
    "split_at",
]
