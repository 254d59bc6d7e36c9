"""The paper's experiment files, one per table and figure (``table1.toml`` ... ``fig6.toml``):
package data read by :func:`npdpsnn.sweep.experiment.load_experiment`."""
