"""What each kind of network is fed: one object per manifest ``input`` value, in ``KINDS``.

A model's manifest row says which input its network was trained on (``input = "rgb"``, ...); its
``Kind`` knows everything the rest of truepix needs about that input:

- ``planes``: how many planes the network gets after the colours, and ``feed``: the network's input
  built from the pixels (in the model's ``transfer`` space) and the step's parameters;
- ``params``: the step parameters it takes, each with a description and a check
  (``recipes.check_step`` refuses others);
- ``needs_raw``: fed from a camera RAW mosaic by ``engine.develop`` (not from decoded RGB);
- ``folds``: a scale-1 network of this kind folds 2x2 pixels, so its tiles need even sides;
- ``strength``, ``finish``: the blend toward the input and what is put back after the network;
- ``guard``, ``restraint``: the fidelity guard's (space, block, tolerance) and the restraint's
  (clamp radius, noise gate) after the network, from the model's row;
- ``branches``: a step decided per photo (``rgb+kind``, weighing the file's EXIF ``hints``) that may
  run two ways and blend them;
- ``defaults``: manifest defaults that differ for this kind (``models.load_manifest`` applies them).

Adding a kind of network means adding one object here; the engine, the recipe checks, the RAW
routing and the memory estimate all ask ``ModelInfo.kind``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from truepix.engine import inputkind
from truepix.errors import RecipeError

if TYPE_CHECKING:
    from truepix.engine.models import ModelInfo
    from truepix.io.hints import Hints

# A step parameter: (what it must be, said in an error; the check of a value).
Param = tuple[str, Callable[[Any], bool]]
# One run of a step: (model, its params, the plane value it is told, its share of the blend).
Run = tuple["ModelInfo", dict, float, float]


def number(lo: float, hi: float) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and lo <= value <= hi)
    return ok


def is_frame(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 4 and all(number(-1e9, 1e9)(v) for v in value)
            and value[2] > 0 and value[3] > 0)


def is_input_kind(value: Any) -> bool:
    return value == "auto" or (isinstance(value, str) and value in inputkind.INPUTS)


def is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def field_planes(h: int, w: int, frame: tuple[float, float, int, int] | None = None) -> np.ndarray:
    """(h, w, 2) float32: each pixel's x and y from the optical centre, in half-diagonals of the
    frame, as a lens model (``input = "rgb+field"``) is told where blur grows.  The frame is the
    image itself (its centre the optical centre) unless ``frame`` = (top, left, frame height, frame
    width) places the image inside a larger one."""
    top, left, fh, fw = frame if frame is not None else (0.0, 0.0, h, w)
    cy, cx = (fh - 1) / 2, (fw - 1) / 2
    r = np.float32(np.hypot(cy, cx) or 1.0)
    out = np.empty((h, w, 2), np.float32)
    out[:, :, 0] = (np.float32(left) + np.arange(w, dtype=np.float32) - np.float32(cx)) / r
    out[:, :, 1] = ((np.float32(top) + np.arange(h, dtype=np.float32) - np.float32(cy)) / r)[:, None]
    return out


def noise_level(model: ModelInfo, pixels: np.ndarray, params: dict) -> float:
    """The noise deviation (0..1 scale, in the model's transfer space) a noise-map model is given:
    the step's ``noise`` (0..255 code values, as photographers and the AWGN literature state it),
    else an estimate from the image (``noiselevel``)."""
    if "noise" in params:
        value = params["noise"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 255:
            raise RecipeError(f"{model.name}: noise must be a number of 0..255 code values, not {value!r}")
        return float(value) / 255.0
    from truepix.engine.noiselevel import estimate_sigma

    return estimate_sigma(pixels)


def strength_of(model: ModelInfo, params: dict) -> float:
    value = params.get("strength", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RecipeError(f"{model.name}: strength must be a number from 0 (off) to 1 (full), not {value!r}")
    return float(value)


class Kind:
    """``input = "rgb"``: the colours alone.  The base of every kind: override what differs."""

    name = "rgb"
    planes = 0                          # planes fed after the colours
    params: Mapping[str, Param] = {}    # the step parameters it takes
    rgb = True                          # fed from decoded RGB by pipeline.run_model
    needs_raw = False                   # fed from a RAW mosaic by engine.develop
    folds = False                       # at scale 1 the network folds 2x2 pixels: even sides
    defaults: Mapping[str, Any] = {}    # manifest defaults that differ for this kind

    def __repr__(self) -> str:
        return f"<kind {self.name}>"

    def extra_planes(self, model: ModelInfo, pixels: np.ndarray, params: dict, provider: str,
                     threads: int) -> np.ndarray | float:
        """The ``planes`` fed after the colours: (H, W, planes), or one value for all of them."""
        raise NotImplementedError

    def feed(self, model: ModelInfo, pixels: np.ndarray, params: dict, provider: str = "auto",
             threads: int = 0) -> np.ndarray:
        """The network's input, (H, W, C + planes) float32, for ``pixels`` (H, W, C)."""
        if not self.planes:
            return pixels
        n = self.planes
        feed = np.empty(pixels.shape[:2] + (pixels.shape[2] + n,), np.float32)
        feed[:, :, :-n] = pixels
        feed[:, :, -n:] = self.extra_planes(model, pixels, params, provider, threads)
        return feed

    def strength(self, model: ModelInfo, params: dict) -> float:
        """The share of the network's result in the output (the rest: the input)."""
        return 1.0

    def finish(self, model: ModelInfo, out: np.ndarray, pixels: np.ndarray, params: dict) -> None:
        """Anything put back into the result ``out`` (in place) after the network ran on ``pixels``."""

    def finishes(self, model: ModelInfo, params: dict) -> bool:
        """Whether ``finish`` changes the result: then the step's output is made whole before it goes
        on (``pipeline.model_rows``), not band by band."""
        return False

    def may_blend(self, params: dict) -> bool:
        """Whether the step may run two ways and blend them (``branches``; ``budget`` counts it)."""
        return False

    def branches(self, info: ModelInfo, params: dict, shown: Callable[[], np.ndarray], table: dict,
                 provider: str, threads: int, hints: Hints | None = None
                 ) -> tuple[list[Run], dict[str, float]] | None:
        """For a step decided per photo: its runs and what was decided (for the report); None runs
        the step once, as it is.  ``shown()``: the sRGB-encoded image the step receives; ``hints``:
        what the file's EXIF says of its origin (``io.hints``), or None."""
        return None

    def guard(self, info: ModelInfo, told: float | None = None) -> tuple[str, int, float]:
        """(space, block, tolerance) of the fidelity guard after ``info``, told ``told`` (``branches``)."""
        return info.anchor, info.anchor_block, info.anchor_tolerance

    def restraint(self, info: ModelInfo) -> tuple[int, float] | None:
        """(clamp radius, noise gate) of ``restrain.restrain`` after ``info``, or None: the manifest's
        ``clamp_radius`` and ``noise_gate`` (the lens optimizer's)."""
        if not (info.clamp_radius or info.noise_gate):
            return None
        return info.clamp_radius, info.noise_gate


class NoiseMap(Kind):
    """``input = "rgb+noise"``: a denoiser told the noise level (``noise_level`` times the row's
    ``noise_map_scale``) in one plane; its result is blended toward the input by ``strength``."""

    name = "rgb+noise"
    planes = 1
    params = {"noise": ("a number of 0..255 code values", number(0, 255)),
              "strength": ("a number from 0 (off) to 1 (full)", number(0, 1))}
    folds = True

    def extra_planes(self, model, pixels, params, provider, threads):
        return noise_level(model, pixels, params) * model.noise_map_scale

    def strength(self, model, params):
        return strength_of(model, params)


class Field(Kind):
    """``input = "rgb+field"``: a lens model told each pixel's place in the frame (``field_planes``)."""

    name = "rgb+field"
    planes = 2
    params = {"frame": ("[top, left, height, width] of the full frame, in pixels", is_frame)}
    folds = True

    def extra_planes(self, model, pixels, params, provider, threads):
        return field_planes(*pixels.shape[:2], params.get("frame"))


class InputKind(Kind):
    """``input = "rgb+kind"``: an upscaler told what it upscales (0 a clean render, 1 a camera file;
    ``engine.inputkind``).  ``branches`` decides per photo (with the file's EXIF hints unless the
    step says ``hints = false``); a camera file is guarded as the camera-trained models are
    (``camera_anchor*``) and may get its grain back."""

    name = "rgb+kind"
    planes = 1
    params = {"input": ('"auto", "camera" or "clean"', is_input_kind),
              "grain": ("a number from 0 (removed) to 1 (all kept)", number(0, 1)),
              "hints": ("true (weigh the file's EXIF) or false", is_flag)}

    def extra_planes(self, model, pixels, params, provider, threads):
        # the input kind, resolved by ``branches`` (or given as "camera"/"clean")
        if "_kind" in params:
            return params["_kind"]
        return float(inputkind.resolve(model, pixels, params, provider, threads)[0] >= 0.5)

    def finish(self, model, out, pixels, params):
        grain = inputkind.grain_of(model, params)
        if grain > 0:
            inputkind.put_back_grain(out, pixels, model.scale, grain)

    def finishes(self, model, params):
        return inputkind.grain_of(model, params) > 0

    def may_blend(self, params):
        return params.get("input", "auto") == "auto"

    def guard(self, info, told=None):
        if told:
            return info.camera_anchor, info.anchor_block, info.camera_anchor_tolerance
        return super().guard(info, told)

    def branches(self, info, params, shown, table, provider, threads, hints=None):
        weight, p = inputkind.resolve(info, shown(), params, provider, threads, hints=hints)
        decided = {"input_kind_camera": round(weight, 4)}
        if p is not None:
            shift, _ = inputkind.hint_of(info, params, hints)
            if shift:
                decided["input_kind_hint"] = float(shift)
            decided["input_kind_p"] = round(p, 4)
        return self.runs(info, params, weight, table), decided

    @staticmethod
    def runs(info: ModelInfo, params: dict, weight: float, table: dict) -> list[Run]:
        """The runs for a camera share ``weight``: (model, params, plane, share).

        A clean file goes to the row's ``clean_model`` when it names one (models/README.md), else
        through the same network told 0; a camera file through the network told 1, with the step's
        grain; a photo the estimator is unsure of (0 < weight < 1) both ways, blended by ``enhance``."""
        inputkind.grain_of(info, params)  # a bad grain is an error whichever way the photo goes
        runs: list[Run] = []
        if weight < 1:
            clean = info.clean_model
            if clean and clean not in table:
                raise RecipeError(f"{info.name}: its clean_model {clean!r} is not installed")
            if clean:
                runs.append((table[clean], {k: v for k, v in params.items() if k not in InputKind.params}, 0.0,
                             1 - weight))
            else:
                runs.append((info, {**params, "_kind": 0.0, "grain": 0.0}, 0.0, 1 - weight))
        if weight > 0:
            runs.append((info, {**params, "_kind": 1.0}, 1.0, weight))
        return runs


class Bayer(Kind):
    """``input = "bayer"``: a demosaic network fed the RAW mosaic as four RGGB planes plus four
    noise planes times the row's ``noise_map_scale`` (``engine.develop``); never from RGB."""

    name = "bayer"
    planes = 4
    params = {"strength": ("a number from 0 (demosaic only) to 1 (full denoise)", number(0, 1))}
    rgb = False
    needs_raw = True
    # as models.train.bayer (NOISE_MAP_SCALE) and the guard develop.demosaic always had
    defaults = {"noise_map_scale": 10.0, "anchor_tolerance": 0.02}

    def strength(self, model, params):
        return strength_of(model, params)

    def feed_mosaic(self, model: ModelInfo, planes: np.ndarray, wb: np.ndarray,
                    noise: tuple[float, float]) -> np.ndarray:
        """(h, w, 8): the (h, w, 4) RGGB planes white-balanced, then their noise deviation (``noise`` =
        (scale, offset) of the variance) white-balanced and times the row's ``noise_map_scale``."""
        g = np.asarray([wb[0], wb[1], wb[1], wb[2]], np.float32)
        out = np.empty(planes.shape[:2] + (8,), np.float32)
        scale, offset = noise
        for c in range(4):
            plane = planes[:, :, c]
            out[:, :, c] = plane * g[c]
            sig = np.maximum(plane, 0.0) * np.float32(scale) + np.float32(offset)
            np.sqrt(sig, out=sig)
            out[:, :, 4 + c] = sig * np.float32(g[c] * model.noise_map_scale)
        return out


class Unknown(Kind):
    """An ``input`` this version of truepix does not know: refused by the engine, unchecked by
    recipes (the engine says why)."""

    params = None  # type: ignore[assignment]
    rgb = False

    def __init__(self, name: str) -> None:
        self.name = name


KINDS: dict[str, Kind] = {k.name: k for k in (Kind(), NoiseMap(), Field(), InputKind(), Bayer())}


def kind_of(input_name: str) -> Kind:
    """The registered kind for a manifest ``input`` value (an ``Unknown`` one when none is)."""
    kind = KINDS.get(input_name)
    return kind if kind is not None else Unknown(input_name)
