"""Package discovery only (metadata lives in pyproject.toml).

The commands live in the top-level folder ``cli/`` but install as the
subpackage ``npdpsnn.cli``, so no top-level package named ``cli`` lands in a
user's site-packages.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["npdpsnn", "npdpsnn.*"]) + ["npdpsnn.cli"],
    package_dir={"npdpsnn.cli": "cli"},
    # the paper's experiment files (npdpsnn sweep / npdpsnn reproduce)
    package_data={"npdpsnn.paper.experiments": ["*.toml"]},
)
