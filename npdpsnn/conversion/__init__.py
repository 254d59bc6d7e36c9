"""PrivateSNN (Kim, Venkatesha & Panda, AAAI 2022): data-free ANN-to-SNN conversion
from synthetic class impressions, spike-based fine-tuning ("encryption"), and
measured class and data leakage.

* :mod:`.impressions` -- class similarity, Dirichlet soft labels, class impressions
  optimised on the input (Nayak et al. 2019);
* :mod:`.balance` -- per-layer thresholds by balancing on synthetic data, the converted SNN;
* :mod:`.finetune` -- surrogate-gradient BPTT on the synthetic set with :func:`~npdpsnn.training.fit`;
* :mod:`.leakage` -- class representatives inverted from weights and their scores;
* :mod:`.energy` -- synaptic operations of the SNN against the ANN's multiply-accumulates;
* :mod:`.experiment` -- the whole pipeline and its records.
"""
