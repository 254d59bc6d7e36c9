"""Privacy accountants for DP-SGD with Poisson subsampling.

Pure analyses (float64, SciPy, no JIT):

* :mod:`.rdp` -- Rényi DP of the sampled Gaussian (Mironov et al. 2019) with
  the improved RDP -> (epsilon, delta) conversion ("MA-epsilon");
* :mod:`.gdp` -- CLT mu-GDP of Bu et al. 2020 ("CLT-epsilon", "CLT-mu");
* :mod:`.pld` -- a numerical privacy-loss-distribution accountant giving a
  certified upper bound that is close to the true epsilon;

registered once in :mod:`.analyses` (:data:`ANALYSES`), plus the event ledger
:class:`PrivacyAccountant` and the noise calibration :func:`calibrate_noise` /
:func:`calibrate_sigma`.
"""

from npdpsnn.privacy.accountants.accountant import PrivacyAccountant
from npdpsnn.privacy.accountants.analyses import ANALYSES, Analysis, UnsupportedEventError, get_analysis
from npdpsnn.privacy.accountants.calibration import calibrate_noise, calibrate_sigma
from npdpsnn.privacy.accountants.gdp import clt_epsilon, clt_mu, clt_mu_history, gdp_delta, gdp_epsilon
from npdpsnn.privacy.accountants.pld import MIN_DELTA as PLD_MIN_DELTA
from npdpsnn.privacy.accountants.pld import pld_delta_history, pld_epsilon, pld_epsilon_history
from npdpsnn.privacy.accountants.rdp import (
    DEFAULT_ORDERS,
    compute_rdp,
    compute_rdp_history,
    rdp_epsilon,
    rdp_to_epsilon,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "DEFAULT_ORDERS",
    "PLD_MIN_DELTA",
    "PrivacyAccountant",
    "UnsupportedEventError",
    "calibrate_noise",
    "calibrate_sigma",
    "get_analysis",
    "clt_epsilon",
    "clt_mu",
    "clt_mu_history",
    "compute_rdp",
    "compute_rdp_history",
    "gdp_delta",
    "gdp_epsilon",
    "pld_delta_history",
    "pld_epsilon",
    "pld_epsilon_history",
    "rdp_epsilon",
    "rdp_to_epsilon",
]
