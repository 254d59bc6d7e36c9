r"""NeuralDP's privacy argument as ledger events, and its epsilon by the analyses of DP-SGD.

**What is protected, under which adjacency.**  Neighbouring training sets
have the same public size ``N`` and differ in *one* example (replace-one, or
"bounded" DP).  With ``labels="private"`` the example is its image and its
label; with ``labels="public"`` the labels are not protected: neighbours differ
in one image and keep every label.  Per-example noisy rows cannot be released
under add/remove adjacency at all -- one example more is one row more, and the
row itself is the difference -- so there is no add/remove statement here.

**The mechanism, step by step** (all randomness fresh, ``N`` and all
hyperparameters public):

1. Frozen encoder (layers ``0..K``) computes :math:`h_i` (:mod:`.features`).  Its
   weights do not depend on the private data, or they were trained with DP-SGD
   on it and that ledger is composed below (``lower="dp-sgd"``); see
   :mod:`.guard`, which refuses anything else.
2. Centre (optional): :math:`c = (\sum_i \mathrm{clip}_{C_c}(h_i) + N(0,
   \sigma_c^2 C_c^2 I))/N`.  Replacing one example moves the sum by at most
   :math:`2C_c`: the Gaussian mechanism with noise multiplier
   :math:`\sigma_c/2` -- ledger event ``ActivationReleaseEvent(sigma_c)``.
3. Rows: :math:`z_i = \bar h_i + N(0, \sigma^2 C^2 I)` with
   :math:`\bar h_i` the centred row bounded to norm ``C`` (:mod:`.release`).  The
   whole matrix :math:`Z` is one Gaussian mechanism: replacing example ``i``
   changes only row ``i``, by at most :math:`\lVert \bar h_i - \bar h'_i \rVert
   \le 2C` (sensitivity ``2C``, noise std :math:`\sigma C`, noise multiplier
   :math:`\sigma/2`) -- ``ActivationReleaseEvent(sigma)``.  Every row is
   released, so no subsampling amplification is claimed.  The rows are released
   *once*; the head reads the same :math:`Z` in every epoch, which is
   post-processing.  (Re-noising every epoch would be ``E`` releases, composing
   to noise multiplier :math:`\sigma/(2\sqrt{E})`; ``E`` releases at
   :math:`\sigma\sqrt{E}` are equivalent to one at :math:`\sigma` -- their mean is
   a sufficient statistic -- so releasing once loses nothing.)
4. Head (layers above ``K``) trained on :math:`(Z, y)`:

   * ``labels="public"``: the labels are public, so the head, its input
     standardisation and its evaluation are post-processing of :math:`Z` and
     public data -- no further event;
   * ``labels="private"``: DP-SGD on the head (Poisson sampling, clipping
     ``R``, noise :math:`\sigma_h R`), recorded by the trainer as add/remove
     events.  Poisson subsampling has no replace-one analysis here (Google's
     ``dp_accounting`` refuses ``PoissonSampledDpEvent`` under ``REPLACE_ONE``),
     so a replacement is taken as a removal and an addition -- the ledger
     wraps the steps in ``ReplaceOneEvent`` and each analysis applies group
     privacy for two (:mod:`npdpsnn.privacy.accountants.analyses`).

5. Composition (adaptive, every event above): RDP adds per order, Gaussian DP
   adds :math:`\mu^2`; the released model (encoder, centre, bound, head) is a
   function of the events' outputs and public data.

**What is assumed** (and named in :mod:`.statement`): ``N`` public; the
encoder's provenance as declared; the noise from a generator whose seed stays
secret (or OS entropy); test-time features carry no noise (test data are not
protected); the ``train_*`` columns are computed without noise and are not
covered; hyperparameters (``C``, ``K``, ...) are not chosen on the private data.

Sources: Dwork & Roth 2014 (Gaussian mechanism, post-processing, composition);
Mironov 2017 (RDP, Prop. 7 and the weak triangle inequality Prop. 11); Mironov,
Talwar & Zhang 2019 (sampled Gaussian RDP); Dong, Roth & Su 2022 (Gaussian DP,
group privacy); Lebeda, Regehr, Kamath & Steinke 2024 (subsampling under
substitution); Knolle et al. 2021 (NeuralDP, whose abstract names the idea but
not the adjacency, the bound or the composition).
"""

from __future__ import annotations

from dataclasses import dataclass

from npdpsnn.errors import UserError
from npdpsnn.privacy.accountants import ANALYSES, PrivacyAccountant, UnsupportedEventError, calibrate_noise
from npdpsnn.privacy.accountants.analyses import get_analysis, metric_columns
from npdpsnn.privacy.events import ActivationReleaseEvent, DpEvent, ReplaceOneEvent, compose
from npdpsnn.privacy.sampling import make_sampler

__all__ = ["PrivacyReport", "calibrate_head_sigma", "calibrate_release_sigma", "head_event", "neuraldp_event",
           "neuraldp_ledger", "privacy_report"]


def neuraldp_event(sigma: float, *, center_noise_factor: float | None = None, head: DpEvent | None = None,
                   lower: DpEvent | None = None) -> DpEvent:
    """The whole run as one replace-one event: the encoder's DP-SGD ledger
    (``lower``, add/remove), the centre release (noise multiplier
    ``center_noise_factor * sigma``), the row release (``sigma``) and the
    head's DP-SGD steps (``head``, add/remove)."""
    parts: list[DpEvent] = []
    if lower is not None:
        parts.append(ReplaceOneEvent(lower))
    if center_noise_factor is not None:
        parts.append(ActivationReleaseEvent(center_noise_factor * sigma))
    parts.append(ActivationReleaseEvent(sigma))
    if head is not None:
        parts.append(ReplaceOneEvent(head))
    return compose(parts)


def neuraldp_ledger(event: DpEvent) -> PrivacyAccountant:
    """A privacy ledger holding ``event`` (serialisable with ``state_dict``)."""
    ledger = PrivacyAccountant()
    ledger.record(event)
    return ledger


def head_event(head_sigma: float, n_rows: int, batch_size: int, epochs: int) -> DpEvent:
    """The head's DP-SGD steps (add/remove): Poisson rate ``B / n``, ``epochs * ceil(n / B)`` steps."""
    return make_sampler("poisson", n_rows, batch_size).training_event(head_sigma, epochs)


@dataclass(frozen=True)
class PrivacyReport:
    """Every analysis' columns for a ledger (``None`` where refused) and, for
    each refusing analysis, why."""

    values: dict[str, float | None]
    refused: dict[str, str]

    def epsilon(self, analysis: str) -> float | None:
        return self.values[get_analysis(analysis).epsilon_column]


def privacy_report(event: DpEvent, delta: float) -> PrivacyReport:
    """The metric columns of every analysis for ``event`` at ``delta``."""
    values: dict[str, float | None] = dict.fromkeys(metric_columns())
    refused: dict[str, str] = {}
    for a in ANALYSES.values():
        if delta < a.min_delta:
            refused[a.name] = f"delta {delta:g} is below its minimum {a.min_delta:g}"
            continue
        try:
            values.update(a.values(event, delta))
        except UnsupportedEventError as exc:
            refused[a.name] = str(exc)
    return PrivacyReport(values, refused)


def calibrate_release_sigma(target_epsilon: float, delta: float, accountant: str = "rdp", *,
                            center_noise_factor: float | None = None, head: DpEvent | None = None,
                            lower: DpEvent | None = None) -> float:
    """Smallest row noise multiplier ``sigma`` (4 significant digits) with the
    whole run's epsilon <= ``target_epsilon`` by ``accountant`` (a bound)."""
    analysis = _bound_analysis(accountant)
    return calibrate_noise(target_epsilon, lambda s: neuraldp_event(
        s, center_noise_factor=center_noise_factor, head=head, lower=lower), delta, analysis)


def calibrate_head_sigma(target_epsilon: float, delta: float, n_rows: int, batch_size: int, epochs: int,
                         accountant: str = "rdp") -> float:
    """Smallest head noise multiplier whose replace-one epsilon alone is <= ``target_epsilon``."""
    analysis = _bound_analysis(accountant)
    return calibrate_noise(target_epsilon, lambda s: ReplaceOneEvent(head_event(s, n_rows, batch_size, epochs)),
                           delta, analysis)


def _bound_analysis(name: str) -> str:
    analysis = get_analysis(name)
    if not analysis.is_bound:
        raise UserError(f"calibrate with an accountant that gives an upper bound "
                        f"({', '.join(a.name for a in ANALYSES.values() if a.is_bound)}), not {analysis.name}")
    return analysis.name

