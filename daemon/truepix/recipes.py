"""Recipes: what truepix does to a photo, as ordered steps plus an output spec.

A recipe file (TOML) looks like::

    name = "upscale-jpeg"
    steps = [ { model = "upscale-x2" } ]
    format = "jpeg"          # tiff | png | jpeg
    bits = 16                # 8 or 16 for tiff/png (jpeg is always 8)
    suffix = "-truepix-x2"   # output = <stem><suffix>.<ext>; default: from the steps (``default_suffix``)
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

An output's name says what made it: a recipe without a ``suffix`` gets one from its steps
(``default_suffix``: ``-truepix-x2``, ``-truepix-x4-camera``, ``-truepix-denoise``,
``-truepix-develop`` ...), so a photographer tells an x2 from an x4 or a denoise in a folder listing;
``OWN_SUFFIXES`` are those of the built-ins plus the old ``-truepix`` every recipe used to write, which
the hot folders keep recognising.  ``Recipe.sha256`` is the recipe's identity for "same content + same
recipe = already done" (the daemon's queue, the Ray ledger, the output's XMP record).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from truepix.errors import ModelError, RecipeError
from truepix.io import formats

# Output formats, their extensions and bit depths: the registry in ``truepix.io.formats``.
FORMATS = formats.OUTPUT_FORMATS  # ("tiff", "png", "jpeg", "dng")
EXTENSIONS = {name: formats.FORMATS[name].extension for name in FORMATS}
COLOUR_SPACES = ("srgb", "adobe-rgb", "prophoto")


MAX_SUFFIX = 64     # characters of a recipe's output suffix
# What every recipe's outputs were called before suffixes said which recipe made them: still
# recognised as truepix's own (hot folders never queue them).
LEGACY_SUFFIXES = ("-truepix",)
# A step's word in a derived suffix: an upscaler by its factor and variant ("upscale-x2-adaptive" ->
# "x2", "upscale-x4-camera" -> "x4-camera"), the demosaic by what it does for a photographer.
_STEP_WORDS = {"demosaic": "develop"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _step_word(model: str) -> str:
    word = _STEP_WORDS.get(model, model).removeprefix("upscale-").replace("-adaptive", "")
    return _UNSAFE.sub("-", word).strip("-.")


def default_suffix(steps) -> str:
    """The output suffix of a recipe that names none: ``-truepix-`` and a word per step, e.g.
    ``-truepix-x2`` (upscale), ``-truepix-x2-camera``, ``-truepix-denoise``, ``-truepix-develop``,
    ``-truepix-develop-x2`` (a demosaic then an x2 upscaler).  Safe file-name characters only; at most
    ``MAX_SUFFIX`` characters (a longer one is ``-truepix``)."""
    suffix = "-".join(["-truepix", *filter(None, (_step_word(s.model) for s in steps))])
    return suffix if len(suffix) <= MAX_SUFFIX else LEGACY_SUFFIXES[0]


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
    suffix: str | None = None  # None: ``default_suffix(steps)``; always a string once built
    guard: bool = True
    bits: int = 16
    output: pathlib.Path | None = None  # None: beside the original
    colour_space: str = "srgb"  # rendered outputs of developed RAWs

    def __post_init__(self) -> None:
        if self.suffix is None:
            object.__setattr__(self, "suffix", default_suffix(self.steps))

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    def sha256(self) -> str:
        """The recipe's identity: sha256 of its settings (``to_mapping``, keys sorted), hex.  Two
        recipes with one name but a parameter apart differ; the same settings under any process agree.
        The queue's duplicate rule, the Ray ledger and the output's XMP record all use this one."""
        return hashlib.sha256(json.dumps(self.to_mapping(), sort_keys=True).encode()).hexdigest()

    @property
    def bit_depth(self) -> int:
        fmt = formats.FORMATS.get(self.format)
        return self.bits if fmt is None else fmt.bit_depth(self.bits)  # JPEG: always 8, DNG: 16

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
    "upscale-x4": Recipe("upscale-x4", (Step("upscale-x4-adaptive"),)),
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


MAX_NAME = 100      # characters of a recipe's name
MAX_DEPTH = 16      # lists/tables inside each other in a recipe mapping (a lens frame is 3 levels down)
# Not in a file name on some system truepix runs on (Windows refuses all of these).
_NOT_IN_NAMES = set('/\\:*?"<>|')


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _control(text: str) -> bool:
    """True when ``text`` holds a control character (NUL, newline, tab, DEL, C1 controls)."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def _too_deep(data: Any, limit: int = MAX_DEPTH) -> str | None:
    """The key path (``steps[0].strength``) at which lists/tables nest more than ``limit`` deep, or
    None.  Iterative: a mapping parsed from deeply nested JSON must not raise RecursionError here."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        named = depth < 3  # the path names the recipe key, step and parameter; deeper levels share it
        if isinstance(item, dict):
            children = [(v, (f"{path}.{k}" if path else str(k)) if named else path) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(v, f"{path}[{i}]" if named else path) for i, v in enumerate(item)]
        else:
            continue
        if depth >= limit:
            return path or "recipe"
        stack.extend((v, depth + 1, p) for v, p in children)
    return None


def step_params(input_name: str) -> dict[str, tuple[str, Callable[[Any], bool]]] | None:
    """The parameters a step may give a model whose manifest ``input`` is ``input_name``: name ->
    (what it must be, check), as its kind in ``engine.kinds`` reads them; None for an input this
    version does not know."""
    from truepix.engine.kinds import KINDS

    kind = KINDS.get(input_name)
    return None if kind is None else dict(kind.params)


def check_step(model: Any, params: dict[str, Any], where: str) -> None:
    """Refuse a parameter ``model`` (a manifest row) does not take, or a value it cannot use.

    ``where`` names the step (``"<file>: recipes.NAME: steps[0]"``).  A model whose ``input`` this
    version does not know is left to the engine.
    """
    takes = step_params(model.input)
    if takes is None:
        return
    for key, value in params.items():
        if key not in takes:
            listed = ": " + ", ".join(f"{k} ({what})" for k, (what, _) in takes.items()) if takes else " none"
            raise RecipeError(f"{where}.{key}: unknown parameter {key!r} for model {model.name}; it takes{listed}")
        what, ok = takes[key]
        if not ok(value):
            raise RecipeError(f"{where}.{key}: must be {what}, not {_short(value)}")


def _installed() -> dict[str, Any] | None:
    """The installed model manifest, or None when it cannot be read (the engine will say why)."""
    from truepix.engine.models import load_manifest

    try:
        return load_manifest()
    except (ModelError, OSError, ValueError, TypeError, KeyError):
        return None


def check_steps(steps: tuple[Step, ...] | list[Step], where: str, installed: dict[str, Any] | None = None,
                require_installed: bool = False) -> None:
    """Every step's parameters against its model (``check_step``); with ``require_installed``
    a model the manifest lacks is refused too, naming the installed ones.  ``installed``: the
    manifest (default: read it; when it cannot be read nothing is checked)."""
    table = _installed() if installed is None else installed
    if table is None:
        return
    for i, step in enumerate(steps):
        info = table.get(step.model)
        if info is None:
            if require_installed:
                raise RecipeError(f"{where}: steps[{i}].model: unknown model {step.model!r}; "
                                  f"installed: {', '.join(sorted(table)) or 'none'}")
            continue
        check_step(info, step.params, f"{where}: steps[{i}]")


def expand_path(raw: str, where: str, key: str, error: type[Exception] = RecipeError) -> pathlib.Path:
    """``raw`` as a path with ``~`` expanded; ``error`` naming ``where`` and ``key`` for a NUL or a
    ``~`` that has no home folder (a recipe's output, a config's hot folder)."""
    if "\0" in raw:
        raise error(f"{where}: {key}: must not contain a NUL character")
    try:
        return pathlib.Path(raw).expanduser()
    except RuntimeError as e:  # "~" without a home folder
        raise error(f"{where}: {key}: {raw!r}: {e}") from None


def _folder(output: str, where: str) -> pathlib.Path:
    out_dir = expand_path(output, where, "output")
    if not out_dir.is_absolute():
        raise RecipeError(f"{where}: output must be an absolute folder path (or start with ~), not {output!r}")
    if ".." in out_dir.parts:
        raise RecipeError(f"{where}: output: {output!r}: '..' is not allowed in a path; give the resolved folder")
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise RecipeError(f"{where}: output: {out_dir}: exists and is not a folder")
    except OSError:
        pass  # unreadable parent: the job will say so when it writes
    return out_dir


def from_mapping(name: str, data: dict[str, Any], where: str, installed: dict[str, Any] | None = None, *,
                 require_installed: bool = False) -> Recipe:
    """Build a recipe from parsed TOML or JSON; ``where`` names the source in errors.

    Each step's parameters are checked against its model in the installed manifest
    (``check_steps``; ``installed`` overrides it); ``require_installed`` also refuses a model the
    manifest lacks (the config and recipe files; the API names missing models itself).
    """
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe must be a table/object, not {type(data).__name__}")
    deep = _too_deep(data)
    if deep:
        raise RecipeError(f"{where}: {deep}: nested too deeply (lists or tables more than {MAX_DEPTH} levels inside "
                          "each other)")
    known = {"name", "steps", "format", "bits", "suffix", "output", "guard", "colour_space"}
    unknown = set(data) - known
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"known: {', '.join(sorted(known))}")
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
    suffix = data.get("suffix")  # absent: from the steps (``default_suffix``)
    if suffix is not None and (not isinstance(suffix, str) or _NOT_IN_NAMES & set(suffix) or _control(suffix)):
        raise RecipeError(f"{where}: suffix must be a plain string without path separators, control characters "
                          f"(NUL, newline) or any of {''.join(sorted(_NOT_IN_NAMES))}, not {_short(suffix)}")
    if suffix is not None and len(suffix) > MAX_SUFFIX:
        raise RecipeError(f"{where}: suffix must be at most {MAX_SUFFIX} characters, not {len(suffix)}")
    guard = data.get("guard", True)
    if not isinstance(guard, bool):
        raise RecipeError(f"{where}: guard must be true or false")
    bits = data.get("bits", 16)
    if bits not in formats.BIT_DEPTHS or isinstance(bits, bool):
        raise RecipeError(f"{where}: bits must be {formats.words(formats.BIT_DEPTHS)}, not {bits!r}")
    output = data.get("output", "")
    if not isinstance(output, str):
        raise RecipeError(f"{where}: output must be a folder path, or \"\" for beside the original")
    out_dir = _folder(output, where) if output else None
    name = data.get("name", name)
    if not isinstance(name, str) or not name:
        raise RecipeError(f"{where}: name must be a non-empty string")
    if _control(name) or len(name) > MAX_NAME:
        raise RecipeError(f"{where}: name must be at most {MAX_NAME} characters without control characters, "
                          f"not {_short(name)}")
    space = data.get("colour_space", "srgb")
    if space not in COLOUR_SPACES:
        raise RecipeError(f"{where}: colour_space must be one of {', '.join(COLOUR_SPACES)}, not {space!r}")
    check_steps(steps, where, installed, require_installed)
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
    except RecursionError:
        raise RecipeError(f"{path}: not valid TOML: nested too deeply") from None
    return from_mapping(path.stem, data, str(path), require_installed=True)


# Output suffixes that are truepix's whatever the config says: the built-ins' and the old one.
OWN_SUFFIXES = tuple(sorted({r.suffix for r in BUILTIN.values()} | set(LEGACY_SUFFIXES)))


def own_outputs(suffixes=()) -> re.Pattern:
    """What a stem (a file name without its extension) of truepix's own output ends with: one of
    ``suffixes`` or ``OWN_SUFFIXES``, maybe numbered (``-1``, ``-12``), any case.  The hot folders and
    ``truepix process FOLDER`` leave such files alone (``.search(stem)``)."""
    names = sorted({s for s in (*suffixes, *OWN_SUFFIXES) if s}, key=len, reverse=True)
    return re.compile(f"(?:{'|'.join(map(re.escape, names))})(?:-\\d+)?$", re.IGNORECASE)
