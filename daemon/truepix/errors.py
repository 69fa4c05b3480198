"""Errors a user can act on.

Every error truepix reports to a person is a ``TruepixError`` whose message
names the file, says what is wrong, and (where it matters) what was kept.
Lower layers raise them; the CLI and the service print them as one line,
never as a traceback.
"""

from __future__ import annotations

import os


class TruepixError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing sentence."""


class ImageReadError(TruepixError):
    """A file could not be decoded as an image (bad, truncated, unsupported, too large)."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{os.path.basename(self.path)}: {reason}")


class ImageWriteError(TruepixError):
    """An output could not be written; no partial file was left behind."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: cannot write output: {reason}")


class ModelError(TruepixError):
    """A model is missing, corrupt (sha256 mismatch) or unknown."""


class RecipeError(TruepixError):
    """A recipe is unknown or malformed."""


class EvalError(TruepixError):
    """``truepix eval`` or ``truepix bench`` cannot run as asked: no images, a model of another kind,
    a protocol that does not take these options, a missing optional package."""
