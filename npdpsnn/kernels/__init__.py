"""Compute kernels behind one interface (:mod:`.protocol`), chosen by name (:mod:`.backend`).

* :mod:`.reference` -- plain NumPy, float64, the paper's equations line by line
  (:mod:`.reference_backend` puts it behind the interface);
* :mod:`.cpu` -- Numba CPU kernels (im2col + BLAS GEMMs, ``nogil`` chunks),
  run by :mod:`.numba_backend` on an engine's threads;
* :mod:`.cuda` / :mod:`.cuda_kernels` -- the CUDA backend and its numba.cuda
  kernels (imported only when used);
* :mod:`.program` -- the layer table the compiled kernels interpret, and weight layouts;
* :mod:`.host`, :mod:`.validate` -- bound data of the CPU backends, boundary checks;
* :mod:`.dispatch` -- former entry points (``set_threads``, ``resolve_device``).
"""
