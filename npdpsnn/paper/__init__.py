"""Reproducing the DPSNN paper (Wang et al. 2022).

* :mod:`.numbers` -- the paper's published numbers (Tables 1-4) and figure captions;
* ``experiments/*.toml`` -- one experiment file per table and figure, at the
  scales :data:`SCALES` (run by ``npdpsnn reproduce`` / ``npdpsnn sweep``);
* :mod:`.reproduce` and :mod:`.render` -- running an item and setting our
  numbers beside the paper's in Markdown;
* scripts: ``python -m npdpsnn.paper.privacy_table`` (the README's privacy
  table), ``python -m npdpsnn.paper.input_scaling``.

Performance benchmarks live in ``bench/``; these are about results.
"""

from npdpsnn.paper.numbers import FIGURES, TABLES

#: What ``npdpsnn reproduce`` can reproduce: the paper's tables and figures.
ITEMS: tuple[str, ...] = (*TABLES, *FIGURES)

#: The scales every shipped experiment defines: seconds, minutes on two cores, the paper's settings.
SCALES: tuple[str, ...] = ("tiny", "smoke", "full")
