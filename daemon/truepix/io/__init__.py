"""Image I/O: decode photos to linear float32, encode outputs atomically, carry metadata."""

from ..colour import linear_to_srgb, srgb_icc, srgb_to_linear
from .image import RAW_EXTENSIONS, SUPPORTED_SUFFIXES, Decoded, read_image, unique_path, write_image
from .metadata import copy_metadata, read_truepix_flag

__all__ = [
    "Decoded", "RAW_EXTENSIONS", "SUPPORTED_SUFFIXES", "copy_metadata", "linear_to_srgb", "read_image",
    "read_truepix_flag", "srgb_icc", "srgb_to_linear", "unique_path", "write_image",
]
