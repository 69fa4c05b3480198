"""truepix: a neural darkroom that enhances photos true to life."""

__version__ = "0.1.0"
