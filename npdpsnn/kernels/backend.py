"""The backend registry: :func:`get_backend` by name, :func:`resolve_device` for ``--device``.

=============  ===========================================================
name           implementation
=============  ===========================================================
``reference``  :mod:`.reference_backend` -- plain NumPy, float64
``numba``      :mod:`.numba_backend` -- Numba CPU kernels on an engine's threads
``cuda``       :mod:`.cuda` -- numba.cuda kernels (a GPU or the simulator)
=============  ===========================================================

A backend object belongs to one :class:`~npdpsnn.engine.Engine` (its threads,
workspaces and caches); ``get_backend(name)`` gives the default engine's.
Implementations are imported on first use, so ``numba.cuda`` is never imported
unless the CUDA backend is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from npdpsnn.engine import Engine, default_engine
from npdpsnn.errors import BackendError
from npdpsnn.kernels.protocol import Backend

log = logging.getLogger(__name__)


def _reference(engine: Engine) -> Backend:
    from npdpsnn.kernels.reference_backend import ReferenceBackend

    return ReferenceBackend(engine)


def _numba(engine: Engine) -> Backend:
    from npdpsnn.kernels.numba_backend import NumbaBackend

    return NumbaBackend(engine)


def _cuda(engine: Engine) -> Backend:
    from npdpsnn.kernels.cuda import CudaBackend

    return CudaBackend(engine)


_REGISTRY: dict[str, Callable[[Engine], Backend]] = {"reference": _reference, "numba": _numba, "cuda": _cuda}


def backend_names() -> tuple[str, ...]:
    """The registered backend names."""
    return tuple(_REGISTRY)


def register_backend(name: str, factory: Callable[[Engine], Backend]) -> None:
    """Add a backend: ``factory(engine)`` returns a :class:`Backend`."""
    if name in _REGISTRY:
        raise BackendError(f"backend {name!r} is already registered")
    _REGISTRY[name] = factory


def get_backend(backend: str | Backend = "numba", engine: Engine | None = None) -> Backend:
    """The backend named ``backend`` of ``engine`` (default: the process-wide
    engine), made once per engine; a :class:`Backend` object is returned as is."""
    if isinstance(backend, str):
        factory = _REGISTRY.get(backend)
        if factory is None:
            raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(_REGISTRY)}")
        eng = engine if engine is not None else default_engine()
        return eng.state(("backend", backend), lambda: factory(eng))
    if isinstance(backend, Backend):
        if engine is not None and getattr(backend, "engine", engine) is not engine:
            raise BackendError(f"the {backend.name!r} backend object belongs to another engine")
        return backend
    raise BackendError(f"backend must be one of {', '.join(_REGISTRY)} or a Backend object, "
                       f"got {type(backend).__name__}")


#: The ``--device`` choices (see :func:`resolve_device`).
DEVICES: tuple[str, ...] = ("cpu", "reference", "cuda", "auto")


def resolve_device(device: str) -> str:
    """The backend name for ``--device``: ``cpu`` -> ``numba``; ``reference`` ->
    ``reference`` (plain NumPy, float64: slower, and the only one computing every
    model option); ``cuda`` -> ``cuda`` or a :class:`BackendError`; ``auto`` ->
    ``cuda`` when a usable GPU exists, else ``numba`` with one warning."""
    if device == "cpu":
        return "numba"
    if device == "reference":
        return "reference"
    if device not in ("cuda", "auto"):
        raise BackendError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    from npdpsnn.kernels.cuda import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        return "cuda"
    if device == "cuda":
        raise BackendError(f"device cuda: {reason}")
    log.warning("no usable GPU (%s); running on the CPU", reason)
    return "numba"
