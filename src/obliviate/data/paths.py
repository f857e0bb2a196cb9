"""Where real data files are found: an environment variable, defaulting to the project's shared folder.

``OBLIVIATE_DATA_DIR`` names a folder holding one sub-folder per dataset (``mnist-t10k/`` ...). When it is
unset, the default is ``../shared/data`` beside a source checkout of this project, which exists for the
developers and CI, not on a user's machine.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "OBLIVIATE_DATA_DIR"


def data_dir() -> Path:
    """The folder real datasets are read from (see the module docstring)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def dataset_dir(name: str) -> Path:
    """``data_dir() / name``: e.g. ``dataset_dir("mnist-t10k")``."""
    return data_dir() / name
