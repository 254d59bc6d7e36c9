"""npdpsnn: differentially private spiking neural networks with NumPy and Numba.

Flow of the package: ``data`` (datasets) -> ``model`` (spec, neurons, surrogates,
parameters) -> ``kernels`` (NumPy reference, Numba CPU, CUDA) -> ``privacy``
(clipping, noise, sampling, accountants) -> ``training`` (loop, checkpoints).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

from npdpsnn.network import Network  # noqa: E402

__all__ += ["Network"]
