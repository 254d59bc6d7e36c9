"""Reproducing the DPSNN paper (Wang et al. 2022): its published numbers and the
scripts that recompute them (``python -m npdpsnn.paper.privacy_table``,
``python -m npdpsnn.paper.input_scaling``).  Performance benchmarks live in
``bench/``; these are about results."""
