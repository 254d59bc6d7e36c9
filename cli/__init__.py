"""Command-line interface of npdpsnn (console script ``npdpsnn``)."""
