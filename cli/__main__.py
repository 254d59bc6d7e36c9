"""``python -m cli``: the same as the ``npdpsnn`` console script."""

from cli.main import main

main()
