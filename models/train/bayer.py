"""Training batches for the joint demosaic + denoise network, made on the fly by ``truepix.simulate``.

A teacher is a patch of a sharp photo taken as the scene, in linear light.  What the network sees is
what a Bayer camera records of it, as ``truepix.io.raw`` hands it over:

- the scene times an exposure factor ``k`` (under-exposed scenes are common in raws; a few are
  over-exposed and clip), divided by the white-balance multipliers (the raw channels see less red
  and blue light than the developed image shows), clipped at the sensor's white level;
- sampled through an RGGB colour filter array;
- recorded with the shot and read noise of a random camera profile at a random ISO (or noise-free),
  quantised to the profile's raw bit depth and normalised (0 = black level, 1 = white level);
- white-balanced again (each site times its channel's multiplier) and packed into four half-
  resolution planes R, G1, G2, B, with four more planes giving each site's noise standard deviation
  from the camera noise model (``noise_sigma``), in the same white-balanced units.

With ``colour_share`` > 0 some scenes first get their colours changed (``vary_colour``): channels
permuted and saturation scaled in linear light.  Photographs of T91/BSD200 keep their channels
strongly correlated; a demosaic that learns that as a rule fails on saturated subjects (flowers,
neon, McMaster's close-ups), where red, green and blue move apart.

The target is the clipped, white-balanced scene at full resolution: what a perfect demosaic and
denoise of this raw gives.  ``k`` comes with each sample so the loss can judge the result as the
developed photo shows it (divided by ``k``).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from truepix.colour import srgb_to_linear
from truepix.simulate.camera import sample_profile
from truepix.simulate.cfa import mosaic, pack
from truepix.simulate.sensor import NoiseModel, add_sensor_noise, noise_variance, normalise_raw, quantise_raw

# The noise planes are fed to the network multiplied by this, so they share the raw planes' range.
NOISE_MAP_SCALE = 10.0


def noise_sigma(planes: np.ndarray, iso: float, model: NoiseModel, gains) -> np.ndarray:
    """Per-site noise standard deviation of white-balanced packed planes (h, w, 4: R, G1, G2, B).

    The camera records ``planes / gain``; its variance comes from the noise model at that signal
    (negative values count as zero), and white balance multiplies the deviation by the gain again.
    """
    g = np.asarray([gains[0], gains[1], gains[1], gains[2]], np.float32)
    signal = np.maximum(planes / g, 0.0)
    return (np.sqrt(noise_variance(signal, iso, model, quantised=True)) * g).astype(np.float32)


def network_input(planes: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(h, w, 8) float32: the four raw planes then the four noise planes times NOISE_MAP_SCALE."""
    return np.concatenate([planes, sigma * np.float32(NOISE_MAP_SCALE)], axis=-1).astype(np.float32)


def load_linear(paths: list[pathlib.Path]) -> list[np.ndarray]:
    """8-bit sRGB files -> linear float32 (H, W, 3) arrays, the scenes."""
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(srgb_to_linear(np.asarray(im.convert("RGB"), np.float32) / 255.0))
    return out


def vary_colour(scene: np.ndarray, rng: np.random.Generator, saturation=(0.6, 2.5)) -> np.ndarray:
    """A linear RGB scene with its channels in a random order and its saturation scaled by a
    log-uniform factor around each pixel's grey (mean of R, G, B), negatives clipped to 0."""
    out = scene[:, :, rng.permutation(3)]
    s = np.float32(_log_uniform(rng, *saturation))
    grey = out.mean(axis=2, keepdims=True)
    return np.maximum(grey + s * (out - grey), 0.0).astype(np.float32)


def _log_uniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class BayerSampler:
    """Random (input, target, k) batches; see the module docstring.

    Args:
        scenes: linear RGB images (``load_linear``).
        patch: side of the half-resolution input patch (the target is twice as large).
        noise_free_share: share of samples with no shot/read noise (quantisation only, sigma 0).
        iso_range: ISO drawn log-uniformly in this range (raised to the profile's base ISO).
        exposure_ev: (lo, hi) of the exposure factor k = 2**U(lo, hi).
        exclude: built-in camera profiles never sampled (held out for evaluation).
        colour_share: share of patches whose colours ``vary_colour`` changes.
    """

    def __init__(self, scenes: list[np.ndarray], patch: int, seed: int = 0, noise_free_share: float = 0.25,
                 iso_range=(100.0, 12800.0), exposure_ev=(-3.0, 0.5), exclude: tuple[str, ...] = ("apsc24",),
                 colour_share: float = 0.0):
        self.scenes = [s for s in scenes if min(s.shape[:2]) >= 2 * patch]
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.noise_free_share, self.iso_range, self.exposure_ev = noise_free_share, iso_range, exposure_ev
        self.exclude = exclude
        self.colour_share = colour_share
        areas = np.array([s.shape[0] * s.shape[1] for s in self.scenes], np.float64)
        self.prob = areas / areas.sum()

    def sample(self, scene: np.ndarray, rng: np.random.Generator, *, noisy: bool | None = None,
               iso: float | None = None, k: float | None = None, gains=None, profile=None):
        """One (input (h, w, 8), target (2h, 2w, 3), k) from a whole (even-sized) scene crop."""
        profile = profile or sample_profile(rng, exclude=self.exclude)
        nm = profile.noise
        if gains is None:
            gains = (float(rng.uniform(1.4, 2.6)), 1.0, float(rng.uniform(1.2, 2.6)))
        g = np.asarray(gains, np.float32)
        if k is None:
            k = 2.0 ** float(rng.uniform(*self.exposure_ev))
        camera = np.clip(scene * np.float32(k) / g, 0.0, 1.0)
        raw = mosaic(camera, "RGGB")
        if noisy is None:
            noisy = rng.random() >= self.noise_free_share
        if noisy:
            iso = iso or _log_uniform(rng, max(self.iso_range[0], nm.base_iso), self.iso_range[1])
            raw = add_sensor_noise(raw, iso, nm, rng)
        raw = normalise_raw(quantise_raw(raw, nm), nm)
        planes = pack(raw, "RGGB") * np.asarray([g[0], g[1], g[1], g[2]], np.float32)
        sigma = noise_sigma(planes, iso, nm, gains) if noisy else np.zeros_like(planes)
        return network_input(planes, sigma), (camera * g).astype(np.float32), float(k)

    def batch(self, size: int):
        """(input (N, 8, p, p), target (N, 3, 2p, 2p), k (N,)) float32."""
        p = self.patch
        xs = np.empty((size, 8, p, p), np.float32)
        ys = np.empty((size, 3, 2 * p, 2 * p), np.float32)
        ks = np.empty(size, np.float32)
        for i, j in enumerate(self.rng.choice(len(self.scenes), size=size, p=self.prob)):
            scene = self.scenes[j]
            y = int(self.rng.integers(0, scene.shape[0] - 2 * p + 1))
            x = int(self.rng.integers(0, scene.shape[1] - 2 * p + 1))
            crop = scene[y:y + 2 * p, x:x + 2 * p]
            t = int(self.rng.integers(0, 8))
            if t & 4:
                crop = crop[:, ::-1]
            crop = np.ascontiguousarray(np.rot90(crop, t & 3))
            if self.colour_share and self.rng.random() < self.colour_share:
                crop = vary_colour(crop, self.rng)
            inp, target, k = self.sample(crop, self.rng)
            xs[i], ys[i], ks[i] = inp.transpose(2, 0, 1), target.transpose(2, 0, 1), k
        return xs, ys, ks
