"""Compute kernels behind one API (:mod:`.dispatch`).

* :mod:`.reference` -- plain NumPy, float64, the paper's equations line by line;
* :mod:`.cpu` -- Numba CPU kernels (im2col + BLAS GEMMs, ``nogil`` chunks on a thread pool);
* :mod:`.cuda` / :mod:`.cuda_kernels` -- numba.cuda kernels (imported only when used);
* :mod:`.program` -- the layer table the compiled kernels interpret, and weight layouts.
"""
