"""The optional packages behind some of ``truepix eval``'s and ``bench``'s rows (the ``eval`` extra):
one place that says, in one line, what is missing and how to install it."""

from __future__ import annotations

import importlib
import logging
import warnings
from types import ModuleType

from truepix.errors import EvalError

log = logging.getLogger("truepix.eval")

INSTALL = "pip install -e '.[eval]'"
PACKAGES = {  # module -> the PyPI package that provides it (all in the eval extra)
    "cv2": "opencv-contrib-python-headless",
    "colour_demosaicing": "colour-demosaicing",
    "bm3d": "bm3d",
}


def load(module: str) -> ModuleType | None:
    """The module, or None when its package is not installed."""
    try:
        with warnings.catch_warnings():  # colour-science announces its optional plotting extras
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        return None


def require(module: str, what: str) -> ModuleType:
    """The module, or an ``EvalError`` naming ``what`` needs it and the install command."""
    found = load(module)
    if found is None:
        raise EvalError(f"{what} needs {PACKAGES.get(module, module)}, which is not installed: {INSTALL}")
    return found


def missing_note(module: str, left_out: str) -> str | None:
    """One line for rows left out because ``module`` is missing (logged, and returned for the result);
    None when it is installed."""
    if load(module) is not None:
        return None
    note = f"{left_out} left out: {PACKAGES.get(module, module)} is not installed ({INSTALL})"
    log.warning("eval: %s", note)
    return note
