"""Recipes: what truepix does to a photo, as ordered steps plus an output spec.

A recipe file (TOML) looks like::

    name = "upscale-jpeg"
    steps = [ { model = "upscale-x2" } ]
    format = "jpeg"          # tiff | png | jpeg
    bits = 16                # 8 or 16 for tiff/png (jpeg is always 8)
    suffix = "-truepix"      # output = <stem><suffix>.<ext>
    output = ""              # "" = beside the original, else a folder (~ allowed)
    guard = true             # fidelity guard: re-anchor colour and brightness
    colour_space = "srgb"    # srgb | adobe-rgb | prophoto: rendered output of a developed RAW

RAW development: a recipe whose first step is a Bayer model (``demosaic``) or whose format is
``dng`` develops camera RAW files itself (``engine.develop``): ``format = "dng"`` writes a linear
DNG that raw editors still treat as a raw; other formats are rendered in ``colour_space`` with
its ICC profile.

Built-in recipes need no file: ``upscale`` (x2, 16-bit TIFF) is the default; ``denoise`` and
``lens`` restore developed photos; ``develop`` turns a RAW into a linear DNG, ``develop-tiff`` into a
16-bit TIFF.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

from truepix.errors import RecipeError

FORMATS = ("tiff", "png", "jpeg", "dng")
EXTENSIONS = {"tiff": ".tif", "png": ".png", "jpeg": ".jpg", "dng": ".dng"}
COLOUR_SPACES = ("srgb", "adobe-rgb", "prophoto")


@dataclass(frozen=True)
class Step:
    """One model applied to the image, with its parameters."""

    model: str
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Recipe:
    name: str
    steps: tuple[Step, ...]
    format: str = "tiff"
    suffix: str = "-truepix"
    guard: bool = True
    bits: int = 16
    output: pathlib.Path | None = None  # None: beside the original
    colour_space: str = "srgb"  # rendered outputs of developed RAWs

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def bit_depth(self) -> int:
        return 8 if self.format == "jpeg" else 16 if self.format == "dng" else self.bits

    def with_format(self, fmt: str | None) -> "Recipe":
        """The same recipe writing ``fmt`` instead (None keeps it)."""
        if fmt is None:
            return self
        _check_format(fmt, "--format")
        return dataclasses.replace(self, format=fmt)

    def to_mapping(self) -> dict[str, Any]:
        """The recipe as plain data (JSON/TOML-able); ``from_mapping`` reads it back."""
        data: dict[str, Any] = {
            "name": self.name, "steps": [{"model": s.model, **s.params} for s in self.steps],
            "format": self.format, "bits": self.bits, "suffix": self.suffix, "guard": self.guard,
            "colour_space": self.colour_space,
        }
        data["output"] = str(self.output) if self.output is not None else ""
        return data


BUILTIN: dict[str, Recipe] = {
    # Told what it upscales (input = "auto" | "camera" | "clean", grain = 0..1): a clean render goes
    # to upscale-x2, a camera file to the broad-family network (models/README.md, docs/recipes.md).
    "upscale": Recipe("upscale", (Step("upscale-x2-adaptive"),)),
    "upscale-x4": Recipe("upscale-x4", (Step("upscale-x4-bicubic"),)),
    # Trained on what a camera records (lens softness, sensor noise, JPEG): for undeveloped or noisy
    # files; they also remove fine texture from clean ones (models/README.md).
    "upscale-camera": Recipe("upscale-camera", (Step("upscale-x2-camera"),)),
    "upscale-x4-camera": Recipe("upscale-x4-camera", (Step("upscale-x4-camera"),)),
    # Noisy developed files (a high-ISO JPEG or TIFF): the noise level is estimated from the image.
    "denoise": Recipe("denoise", (Step("denoise"),)),
    # Soft developed files (diffraction at small apertures, a lens soft in the corners): blind
    # correction, restrained by the engine (no halos, grain kept).
    "lens": Recipe("lens", (Step("lens"),)),
    # Camera RAW files: the demosaic + denoise network on the Bayer mosaic.
    "develop": Recipe("develop", (Step("demosaic"),), format="dng"),
    "develop-tiff": Recipe("develop-tiff", (Step("demosaic"),)),
}
DEFAULT_RECIPE = "upscale"


def _check_format(fmt: Any, where: str) -> None:
    if fmt not in FORMATS:
        raise RecipeError(f"{where}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def from_mapping(name: str, data: dict[str, Any], where: str) -> Recipe:
    """Build a recipe from parsed TOML; ``where`` names the source in errors."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe must be a table/object, not {type(data).__name__}")
    known = {"name", "steps", "format", "bits", "suffix", "output", "guard", "colour_space"}
    unknown = set(data) - known
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise RecipeError(f"{where}: 'steps' must be a non-empty list of {{ model = \"NAME\" }} tables")
    steps = []
    for i, s in enumerate(steps_raw):
        if not isinstance(s, dict) or not isinstance(s.get("model"), str):
            raise RecipeError(f"{where}: steps[{i}] must be a table with a 'model' name")
        steps.append(Step(s["model"], {k: v for k, v in s.items() if k != "model"}))
    fmt = data.get("format", "tiff")
    _check_format(fmt, f"{where}: format")
    suffix = data.get("suffix", "-truepix")
    if not isinstance(suffix, str) or "/" in suffix or "\\" in suffix:
        raise RecipeError(f"{where}: suffix must be a plain string without path separators")
    guard = data.get("guard", True)
    if not isinstance(guard, bool):
        raise RecipeError(f"{where}: guard must be true or false")
    bits = data.get("bits", 16)
    if bits not in (8, 16) or isinstance(bits, bool):
        raise RecipeError(f"{where}: bits must be 8 or 16, not {bits!r}")
    output = data.get("output", "")
    if not isinstance(output, str):
        raise RecipeError(f"{where}: output must be a folder path, or \"\" for beside the original")
    out_dir = pathlib.Path(output).expanduser() if output else None
    if out_dir is not None and not out_dir.is_absolute():
        raise RecipeError(f"{where}: output must be an absolute folder path (or start with ~), not {output!r}")
    name = data.get("name", name)
    if not isinstance(name, str) or not name:
        raise RecipeError(f"{where}: name must be a non-empty string")
    space = data.get("colour_space", "srgb")
    if space not in COLOUR_SPACES:
        raise RecipeError(f"{where}: colour_space must be one of {', '.join(COLOUR_SPACES)}, not {space!r}")
    return Recipe(name, tuple(steps), fmt, suffix, guard, bits, out_dir, space)


def load_recipe(spec: str | None = None, model: str | None = None, known: dict[str, Recipe] | None = None) -> Recipe:
    """The recipe named ``spec``: a name in ``known`` (default: the built-ins) or a TOML file path.

    ``model`` instead makes a one-step recipe running just that model.
    """
    if model is not None:
        return Recipe(model, (Step(model),))
    known = BUILTIN if known is None else known
    spec = spec or DEFAULT_RECIPE
    if spec in known:
        return known[spec]
    path = pathlib.Path(spec)
    if path.suffix.lower() != ".toml" and not path.exists():
        raise RecipeError(f"unknown recipe {spec!r}; known recipes: {', '.join(known)}, or give a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read recipe file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}") from None
    return from_mapping(path.stem, data, str(path))
