"""Sweeps: many training runs declared in one experiment file.

* :mod:`.experiment` -- the TOML experiment file (base configuration, grid,
  scales) and its schema;
* :mod:`.plan` -- expanding the grid into runs: folder names and seeds;
* :mod:`.runner` -- :func:`~.runner.run_one`, the plain entry point that trains
  or resumes one run folder (what every executor calls);
* :mod:`.executors` -- in-process serial and local process-pool executors, and
  the kernel-thread budget per worker; :mod:`.dask_executor` -- Dask
  distributed (optional extra ``npdpsnn[dask]``, imported only there);
* :mod:`.results` -- reading run folders and the tidy results table;
* :mod:`.progress` -- runs done and ETA, as text;
* :mod:`.sweep` -- :func:`~.sweep.run_sweep`, which ties them together.
"""

from __future__ import annotations

from npdpsnn.sweep.experiment import Experiment, load_experiment
from npdpsnn.sweep.plan import PlannedRun, plan_runs
from npdpsnn.sweep.sweep import SweepOutcome, run_sweep

__all__ = ["Experiment", "PlannedRun", "SweepOutcome", "load_experiment", "plan_runs", "run_sweep"]
