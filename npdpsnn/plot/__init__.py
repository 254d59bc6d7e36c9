"""Learning-curve and privacy figures of runs and sweeps.

* :mod:`.curves` -- which runs go into which panel and curve, and their labels
  (plain Python: no plotting library needed);
* :mod:`.figures` -- drawing them as PNG and SVG with matplotlib, the optional
  extra ``npdpsnn[plot]``, imported only there.
"""
