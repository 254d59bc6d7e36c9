"""The numbers printed in the DPSNN paper (Wang et al. 2022): the one home of each.

Tables 1-4 as typed from the paper (accuracy in percent; MA-eps, CLT-eps and
CLT-mu at delta = 1e-5), with the settings each table states.  Everything
that recomputes or compares them (:mod:`npdpsnn.paper.privacy_table`,
:mod:`npdpsnn.paper.reproduce`) imports them from here; our own numbers are
always computed, never copied from these.
"""

from __future__ import annotations

from dataclasses import dataclass

#: delta of every (epsilon, delta) figure in the paper.
DELTA = 1e-5

#: Extended Yale B as the paper's text describes it: 29 subjects x 576 images,
#: 128 per subject held out for testing.
YALE_N_PAPER = 29 * (576 - 128)


@dataclass(frozen=True)
class PaperRow:
    """One printed row: the varied ``setting`` (sigma, or T in Table 4), the
    test accuracy in percent per model kind (``{"snn": .., "ann": ..}``) and
    the privacy columns."""

    setting: float
    accuracy: dict[str, float]
    ma_epsilon: float
    clt_epsilon: float
    clt_mu: float


@dataclass(frozen=True)
class PaperTable:
    """A table of the paper with the settings it states: ``varied`` is the
    configuration field its rows vary (``dp.sigma`` or ``model.T``)."""

    name: str
    title: str
    dataset: str
    varied: str
    batch_size: int
    n_train: int
    epochs: int
    rows: tuple[PaperRow, ...]
    accuracy_is_best: bool = False  # "best test accuracy in E epochs" (Tables 3 and 4)

    def row(self, setting: float) -> PaperRow | None:
        """The row printed for ``setting``, or None."""
        return next((r for r in self.rows if r.setting == setting), None)


def _rows(kinds: tuple[str, ...], data: list[tuple]) -> tuple[PaperRow, ...]:
    n = len(kinds)
    return tuple(PaperRow(r[0], dict(zip(kinds, r[1 : 1 + n])), *r[1 + n :]) for r in data)


TABLES: dict[str, PaperTable] = {
    "table1": PaperTable(
        "table1", "Table 1: Net2 SNN and ANN on MNIST at equal privacy", "mnist", "dp.sigma", 250, 60000, 60,
        _rows(("snn", "ann"), [
            (1.6, 97.96, 95.35, 1.46, 1.32, 0.35),
            (1.3, 98.19, 96.57, 1.93, 1.74, 0.44),
            (1.0, 98.36, 97.31, 2.93, 2.60, 0.63),
            (0.7, 98.55, 97.95, 6.55, 5.31, 1.18),
            (0.5, 98.63, 98.45, 23.20, 21.65, 3.66),
        ])),
    "table2": PaperTable(
        "table2", "Table 2: Net2 SNN and ANN on Fashion-MNIST at equal privacy", "fashion-mnist", "dp.sigma",
        250, 60000, 80,
        _rows(("snn", "ann"), [
            (1.6, 87.31, 83.82, 1.61, 1.46, 0.38),
            (1.3, 87.51, 84.75, 2.23, 2.02, 0.51),
            (1.0, 87.93, 85.90, 3.55, 3.18, 0.76),
            (0.7, 88.34, 87.72, 8.28, 7.02, 1.49),
            (0.5, 88.37, 88.33, 24.98, 23.77, 3.93),
        ])),
    "table3": PaperTable(
        "table3", "Table 3: best test accuracy in 80 epochs on Extended Yale B", "yaleb", "dp.sigma", 256,
        YALE_N_PAPER, 80,
        _rows(("snn",), [
            (2.5, 99.30, 2.21, 1.96, 0.49),
            (2.0, 99.58, 3.05, 2.71, 0.66),
            (1.5, 99.55, 4.42, 3.89, 0.90),
        ]), accuracy_is_best=True),
    "table4": PaperTable(
        "table4", "Table 4: time window T, Net2 SNN on Fashion-MNIST, sigma = 1.0 (at the best epoch)",
        "fashion-mnist", "model.T", 250, 60000, 80,
        _rows(("snn",), [
            (5, 87.93, 3.55, 3.18, 0.76),
            (10, 88.49, 3.43, 3.06, 0.73),
            (15, 89.0, 3.45, 3.09, 0.74),
        ]), accuracy_is_best=True),
}

#: What each figure of the paper shows, in our words (the paper prints curves, no numbers).
FIGURES: dict[str, str] = {
    "fig3": "Figure 3: test accuracy per epoch on MNIST, Net1/Net2 x ANN/SNN, (A) no DP, (B) sigma = 1.0, "
            "(C) sigma = 1.6; the paper reports SNN above ANN under noise, the gap growing with sigma.",
    "fig4": "Figure 4: as Figure 3 on Fashion-MNIST (80 epochs); the paper reports the ANN curves dropping "
            "more than the SNN ones as noise grows.",
    "fig5": "Figure 5: Net2 SNN on Fashion-MNIST with the gate, darctanh and normal surrogates at sigma = "
            "0.5, 1.0, 1.6; the paper reports the gate surrogate ahead under stronger privacy.",
    "fig6": "Figure 6: Net2 SNN on Fashion-MNIST with IF and LIF (lambda = 0.2) neurons at sigma = 0.5, "
            "1.0, 1.6; the paper reports IF ahead.",
}
