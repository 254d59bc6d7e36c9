"""``python -m npdpsnn.cli``: the same as the ``npdpsnn`` console script."""

from npdpsnn.cli.main import main

main()
