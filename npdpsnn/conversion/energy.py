"""Energy proxy: synaptic operations of the SNN against the ANN's multiply-accumulates.

ANN: every weight layer does ``MAC_l = outputs x fan-in`` multiply-accumulates per
inference (conv: ``O Ho Wo C k k``; fc: ``out x in``).

SNN: a synaptic operation (an accumulate, AC) happens when an input spike meets
a weight, so layer ``l`` does ``sum_t sum_outputs #{non-zero inputs in the
receptive field}`` ACs -- spikes x fan-out, summed over ``T``.  The first layer
reads the analog image under direct encoding: its current is the same at every
step, computed once as ``MAC_0`` multiply-accumulates (under Poisson input it is
counted as ACs like the others).

Energy with the 45 nm CMOS figures PrivateSNN uses (Horowitz 2014):
``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ`` (32-bit float); ratio ``E_ANN / E_SNN``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from npdpsnn.kernels.reference import conv2d, forward_trace_batch
from npdpsnn.network import Network

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def ann_macs(net: Network) -> list[int]:
    """Multiply-accumulates of each weight layer per inference."""
    return [layer.out_size * layer.fan_in for layer in net.layers if layer.has_weights]


def _synaptic_ops(layer, a: np.ndarray) -> np.ndarray:
    """Per example: the MACs of ``layer`` whose input entry is non-zero."""
    nz = (a != 0).astype(np.float64)
    if layer.kind == "conv":
        ones = np.ones((layer.out_shape[0], layer.in_shape[0], layer.kernel, layer.kernel))
        return conv2d(nz, ones, None, layer.stride, layer.padding).reshape(len(a), -1).sum(axis=1)
    return nz.reshape(len(a), -1).sum(axis=1) * layer.out_shape[0]


@dataclass
class EnergyReport:
    ann_macs: int
    snn_macs: float
    snn_acs: float
    ann_energy_pj: float
    snn_energy_pj: float
    ratio: float
    T: int
    per_layer_acs: list

    def to_dict(self) -> dict:
        return asdict(self)


def energy(snn: Network, x: np.ndarray, batch: int = 50) -> EnergyReport:
    """Mean operations per inference of ``snn`` on the images ``x`` and the energy ratio."""
    weight_layers = [i for i, layer in enumerate(snn.layers) if layer.has_weights]
    acs = np.zeros(len(weight_layers))
    direct = snn.config.encoding == "direct"
    for s in range(0, len(x), batch):
        tr = forward_trace_batch(snn.layers, snn.params, np.asarray(x[s : s + batch]), snn.config)
        for j, li in enumerate(weight_layers):
            if li == 0 and direct:
                continue
            for a in tr.inputs[li]:
                acs[j] += _synaptic_ops(snn.layers[li], a).sum()
    acs /= max(len(x), 1)
    macs = ann_macs(snn)
    snn_macs = float(macs[0]) if direct else 0.0
    e_ann = sum(macs) * E_MAC_PJ
    e_snn = snn_macs * E_MAC_PJ + float(acs.sum()) * E_AC_PJ
    return EnergyReport(int(sum(macs)), snn_macs, float(acs.sum()), e_ann, e_snn, e_ann / max(e_snn, 1e-30),
                        snn.config.T, [float(v) for v in acs])
