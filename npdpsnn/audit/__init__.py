"""Empirical privacy audits: the statistics behind ``npdpsnn audit``.

Pure NumPy/SciPy in float64; every public function validates its input and
raises :class:`npdpsnn.errors.UserError` on bad input.

* :mod:`.one_run` -- p-value and epsilon lower bound of the one-run canary audit
  (Steinke, Nasr & Jagielski, NeurIPS 2023);
* :mod:`.one_run_fdp` -- its f-DP (Gaussian) refinement (Mahloujifar, Melis &
  Chaudhuri, ICML 2025);
* :mod:`.canary_audit` -- guesses from canary scores and the choice of ``k``
  (fixed, Bonferroni over a grid, or jax_privacy's ROC-hull convention);
* :mod:`.roc` -- ROC, AUC, balanced accuracy, TPR at fixed FPR;
* :mod:`.mia` -- the loss-threshold attack and LiRA (Carlini et al. 2022);
* :mod:`.gdp_tradeoff` -- what mu-GDP allows an attack (AUC, TPR, balanced
  accuracy ceilings) and mu(eps, delta);
* :mod:`.images` -- PSNR and SSIM of images in [0, 1];
* :mod:`.inversion` -- the analytic input recovery from a first fully connected
  layer's gradient.
"""

from __future__ import annotations

from npdpsnn.audit.canary_audit import (
    METHODS,
    CanaryAudit,
    audit_canaries,
    audit_canaries_best_k,
    audit_canaries_roc_hull,
    canary_guesses,
    default_k_grid,
)
from npdpsnn.audit.gdp_tradeoff import gdp_auc_ceiling, gdp_balanced_accuracy_ceiling, gdp_mu, gdp_tpr_ceiling
from npdpsnn.audit.images import psnr, psnr_batch, ssim, ssim_batch, ssim_window
from npdpsnn.audit.inversion import FcInversion, recover_fc_input
from npdpsnn.audit.mia import (
    LiraResult,
    LiraShadowStats,
    lira_attack,
    lira_scores,
    lira_statistic,
    loss_attack,
    shadow_stats,
)
from npdpsnn.audit.one_run import one_run_epsilon, one_run_p_value
from npdpsnn.audit.one_run_fdp import fdp_epsilon, fdp_rejects
from npdpsnn.audit.roc import AttackMetrics, RocCurve, attack_metrics, roc_auc, roc_curve

__all__ = [
    "METHODS",
    "AttackMetrics",
    "CanaryAudit",
    "FcInversion",
    "LiraResult",
    "LiraShadowStats",
    "RocCurve",
    "attack_metrics",
    "audit_canaries",
    "audit_canaries_best_k",
    "audit_canaries_roc_hull",
    "canary_guesses",
    "default_k_grid",
    "fdp_epsilon",
    "fdp_rejects",
    "gdp_auc_ceiling",
    "gdp_balanced_accuracy_ceiling",
    "gdp_mu",
    "gdp_tpr_ceiling",
    "lira_attack",
    "lira_scores",
    "lira_statistic",
    "loss_attack",
    "one_run_epsilon",
    "one_run_p_value",
    "psnr",
    "psnr_batch",
    "recover_fc_input",
    "roc_auc",
    "roc_curve",
    "shadow_stats",
    "ssim",
    "ssim_batch",
    "ssim_window",
]
