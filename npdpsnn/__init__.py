"""npdpsnn: differentially private spiking neural networks with NumPy and Numba.

Flow of the package: ``data`` (datasets) -> ``model`` (spec, neurons, surrogates,
parameters) -> ``kernels`` (NumPy reference, Numba CPU, CUDA) -> ``privacy``
(clipping, noise, sampling, accountants) -> ``training`` (loop, checkpoints) ->
``audit`` (measured privacy).  See docs/architecture.md.

``Network`` is imported on first use (PEP 562), so ``import npdpsnn`` -- and the
command line's start-up -- stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Network", "__version__"]


def __getattr__(name: str):
    if name == "Network":
        from npdpsnn.network import Network

        return Network
    raise AttributeError(f"module 'npdpsnn' has no attribute {name!r}")
