"""Membership inference on trained models: the loss attack and LiRA with shadow models.

* :func:`loss_audit` -- a trained network, its training examples as members and
  as many test examples as non-members; score = minus the loss (Yeom et al. 2018).
* :func:`lira_audit` -- ``shadows + 1`` models trained with one configuration,
  each on a random half of a pool of training examples (every example is IN
  for about half of the models); model 0 is the target, the others its shadows;
  LiRA online and offline (Carlini et al. 2022; :mod:`.mia`) and, on the same
  pool, the loss attack on the target.

Each report carries what the run's privacy claim allows an attacker: for a
mu-GDP mechanism AUC <= Phi(mu / sqrt 2) and TPR <= Phi(Phi^-1(FPR) + mu)
(Dong, Roth & Su 2022).  Two mu are given: the CLT mu the DPSNN paper reports
(an approximation) and the mu of a Gaussian mechanism with the run's certified
(epsilon, delta) from the tightest upper bound -- only the latter is a ceiling
the run is proven to respect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from npdpsnn.audit.gdp_tradeoff import gdp_auc_ceiling, gdp_mu, gdp_tpr_ceiling
from npdpsnn.audit.mia import LiraResult, lira_attack, loss_attack
from npdpsnn.audit.roc import DEFAULT_FPRS, AttackMetrics
from npdpsnn.data import Dataset
from npdpsnn.data.subsets import take, training_subset
from npdpsnn.errors import UserError
from npdpsnn.network import Network
from npdpsnn.privacy.accountants import ANALYSES, PrivacyAccountant
from npdpsnn.training.config import TrainConfig
from npdpsnn.training.trainer import evaluate_model, fit


@dataclass(frozen=True)
class Ceilings:
    """What mu-GDP allows: ``auc`` and ``tpr`` at ``fprs``, for the CLT mu and the certified mu."""

    clt_mu: float | None
    certified_mu: float | None
    fprs: tuple[float, ...]
    auc_clt: float | None
    auc_certified: float | None
    tpr_clt: tuple[float, ...] | None
    tpr_certified: tuple[float, ...] | None


def gdp_ceilings(ledger: PrivacyAccountant | None, delta: float, fprs=DEFAULT_FPRS) -> Ceilings:
    """The attack ceilings of a run's ledger (``None`` values without DP)."""
    fprs = tuple(float(f) for f in fprs)
    if ledger is None or ledger.steps == 0:
        return Ceilings(None, None, fprs, None, None, None, None)
    eps = ledger.all_epsilons(delta)
    bounds = [eps[a.epsilon_column] for a in ANALYSES.values() if a.is_bound and eps[a.epsilon_column] is not None]
    clt = eps.get("clt_mu")
    certified = gdp_mu(min(bounds), delta) if bounds and np.isfinite(min(bounds)) else None

    def tprs(mu):
        return None if mu is None else tuple(float(t) for t in gdp_tpr_ceiling(mu, np.array(fprs)))

    return Ceilings(clt, certified, fprs, None if clt is None else gdp_auc_ceiling(clt),
                    None if certified is None else gdp_auc_ceiling(certified), tprs(clt), tprs(certified))


@dataclass(frozen=True)
class MembershipReport:
    """Attack results on one target model and the ceilings its privacy claim implies."""

    loss: AttackMetrics
    lira_online: LiraResult | None
    lira_offline: LiraResult | None
    ceilings: Ceilings
    n_members: int
    n_nonmembers: int
    shadows: int

    def to_dict(self) -> dict:
        return asdict(self)


def loss_audit(net: Network, data: Dataset, config: TrainConfig, ledger: PrivacyAccountant | None = None,
               n: int = 2000, seed: int = 0, backend: str = "numba") -> MembershipReport:
    """Loss attack on ``net``: up to ``n`` of its training examples vs as many test examples."""
    n_train = config.run.limit_train or len(data.train_y)
    k = min(n, n_train, len(data.test_y))
    if k < 2:
        raise UserError("the loss attack needs at least 2 members and 2 non-members")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x11A]))
    members = np.sort(rng.choice(n_train, size=k, replace=False))
    others = np.sort(rng.choice(len(data.test_y), size=k, replace=False))
    lm = evaluate_model(net, take(data.train_x, members), data.train_y[members], backend).losses
    lo = evaluate_model(net, take(data.test_x, others), data.test_y[others], backend).losses
    is_member = np.r_[np.ones(k, bool), np.zeros(k, bool)]
    return MembershipReport(loss_attack(np.r_[lm, lo], is_member), None, None,
                            gdp_ceilings(ledger, config.dp.delta), k, k, 0)


def lira_audit(config: TrainConfig, data: Dataset, shadows: int = 16, pool: int | None = None, seed: int = 0,
               backend: str = "numba", fixed_variance: bool = True) -> MembershipReport:
    """Train ``shadows + 1`` models on random halves of a pool of training examples
    (``pool`` first examples; default ``run.limit_train``) and attack model 0."""
    if shadows < 2:
        raise UserError(f"LiRA needs at least 2 shadow models, got {shadows}")
    size = pool or config.run.limit_train
    if size is None or not 4 <= size <= len(data.train_y):
        raise UserError("LiRA needs a pool of 4 .. N training examples (give pool or run.limit_train)")
    n_models = shadows + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x11B]))
    in_mask = np.zeros((n_models, size), bool)
    for i in range(n_models):  # every model gets a random half of the pool
        in_mask[i, rng.permutation(size)[: size // 2]] = True
    run_config = config.with_values({"run.limit_train": None, "run.validation": 0})
    pool_x, pool_y = take(data.train_x, np.arange(size)), np.asarray(data.train_y[:size])
    logits = np.empty((n_models, size, data.num_classes))
    ledger = None
    for i in range(n_models):
        cfg = run_config.with_values({"run.seed": int(np.random.SeedSequence([seed, i]).generate_state(1)[0] >> 1)})
        result = fit(cfg, training_subset(data, np.flatnonzero(in_mask[i])), backend=backend, evaluate_test=False)
        logits[i] = evaluate_model(result.network, pool_x, pool_y, backend).logits
        if i == 0:
            ledger, target = result.trainer.accountant, result.network
    online = lira_attack(logits, pool_y, in_mask, target=0, online=True, fixed_variance=fixed_variance)
    offline = lira_attack(logits, pool_y, in_mask, target=0, online=False, fixed_variance=fixed_variance)
    losses = evaluate_model(target, pool_x, pool_y, backend).losses
    return MembershipReport(loss_attack(losses, in_mask[0]), online, offline, gdp_ceilings(ledger if config.dp.enabled else None, config.dp.delta),
                            int(in_mask[0].sum()), int((~in_mask[0]).sum()), shadows)
