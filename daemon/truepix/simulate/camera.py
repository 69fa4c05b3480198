"""Camera profiles: the sensor and lens-family parameters of a few typical camera classes.

The built-in figures are representative of each class, rounded; they are not measurements of one camera.
Where the orders of magnitude come from: pixel pitches are sensor width / horizontal pixel count from makers'
specifications (35.9 mm / 6000 px = 5.98 µm, 23.5 mm / 6000 px = 3.92 µm, 13.2 mm / 5472 px = 2.41 µm,
1.4 µm for 12 MP phone sensors).  Full-well capacities and read noise follow published photon-transfer
measurements: Bill Claff's (photonstophotos.net, e.g. "Sony A7RM2 DR-Pix Read Noise") show a few electrons
of read noise at base ISO, falling to about 1 e- at high ISO once the ISO amplifier's gain dwarfs the ADC's
noise; Jim Kasson (blog.kasson.com, "Sony a6300 read noise modeling") quotes Claff's 45 000 e- full well for
an APS-C 24 MP sensor.  The wells below come to 1 400-2 300 e- per µm² of pixel area.  Black levels are
typical of each raw bit depth (e.g. 512 on 14-bit Sony bodies, 64 on 10-bit phone raw).  The CFA phases are
spread so that all four Bayer patterns occur.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from truepix.simulate.cfa import PATTERNS
from truepix.simulate.sensor import NoiseModel

__all__ = ["CameraProfile", "PROFILES", "sample_profile"]


@dataclass(frozen=True)
class CameraProfile:
    """One camera: what the simulation needs to know about its sensor and typical lenses.

    name: profile key.  pixel_pitch_um: photosite pitch in µm.  olpf_strength: split distance of the
    optical low-pass filter in pixels (0 = no OLPF).  cfa_pattern: one of cfa.PATTERNS.  noise: the
    sensor's NoiseModel.  f_number_range: (widest, narrowest) f-numbers commonly used.
    resolution_mp: megapixels (informational).
    """

    name: str
    pixel_pitch_um: float
    olpf_strength: float
    cfa_pattern: str
    noise: NoiseModel
    f_number_range: tuple[float, float]
    resolution_mp: float

    def __post_init__(self) -> None:
        if self.cfa_pattern not in PATTERNS:
            raise ValueError(f"unknown CFA pattern {self.cfa_pattern!r}")
        if self.pixel_pitch_um <= 0 or self.olpf_strength < 0:
            raise ValueError("pixel_pitch_um must be positive and olpf_strength >= 0")
        lo, hi = self.f_number_range
        if not 0 < lo <= hi:
            raise ValueError(f"bad f_number_range {self.f_number_range}")


def _noise(bits: int, black: int, base_iso: float, full_well: float, read: float, read_high: float) -> NoiseModel:
    """A NoiseModel whose raw range at base ISO spans the full well exactly."""
    return NoiseModel(base_iso=base_iso, gain_e_per_dn_base=full_well / (2 ** bits - 1 - black), read_noise_e=read,
                      full_well_e=full_well, bits=bits, black_level_dn=black, read_noise_e_high=read_high)


PROFILES: dict[str, CameraProfile] = {
    # Full frame 24 MP (6000x4000 on 35.9 mm): ~50 000 e- well, ~3 e- base read noise, ~1.3 e- at high ISO.
    "ff24": CameraProfile("ff24", 5.95, 0.35, "RGGB", _noise(14, 512, 100, 50000, 3.0, 1.3), (1.8, 16.0), 24.0),
    # APS-C 24 MP (6000x4000 on 23.5 mm): ~30 000 e- well (recent sensors reach ~45 000), ~2.5 e- read noise.
    "apsc24": CameraProfile("apsc24", 3.9, 0.3, "GBRG", _noise(14, 1024, 100, 30000, 2.5, 1.2), (2.0, 16.0), 24.0),
    # 1-inch 20 MP (5472x3648 on 13.2 mm), no OLPF, 12-bit raw, base ISO 125: ~13 000 e- well, ~2 e- read noise.
    "oneinch20": CameraProfile("oneinch20", 2.4, 0.0, "GRBG", _noise(12, 200, 125, 13000, 2.0, 1.1), (1.8, 11.0),
                               20.0),
    # Phone 12 MP (1.4 µm), no OLPF, 10-bit raw, fixed fast aperture: ~4 500 e- well, ~1.5 e- read noise.
    "phone12": CameraProfile("phone12", 1.4, 0.0, "BGGR", _noise(10, 64, 50, 4500, 1.5, 1.0), (1.5, 2.4), 12.0),
}


def sample_profile(rng: np.random.Generator, exclude: tuple[str, ...] = ()) -> CameraProfile:
    """Draw a camera from the family around the built-in PROFILES (minus the names in ``exclude``).

    A built-in is chosen uniformly and jittered: pixel pitch x U(0.9, 1.1) (sensor size kept, so the
    megapixels follow, and the full well and base gain scale with the pixel area), OLPF strength
    x U(0.7, 1.3) (0 stays 0), read noise (base and high-ISO) x U(0.8, 1.2), and a uniformly random CFA
    pattern.  The result keeps the built-in's name, so held-out profiles can be recognised.
    """
    names = [n for n in PROFILES if n not in exclude]
    if not names:
        raise ValueError(f"every built-in profile is excluded ({exclude})")
    base = PROFILES[names[int(rng.integers(len(names)))]]
    pitch_f = float(rng.uniform(0.9, 1.1))
    olpf_f = float(rng.uniform(0.7, 1.3))
    read_f = float(rng.uniform(0.8, 1.2))
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    nm = base.noise
    noise = dataclasses.replace(
        nm,
        gain_e_per_dn_base=nm.gain_e_per_dn_base * pitch_f ** 2,
        full_well_e=nm.full_well_e * pitch_f ** 2,
        read_noise_e=nm.read_noise_e * read_f,
        read_noise_e_high=None if nm.read_noise_e_high is None else nm.read_noise_e_high * read_f,
    )
    return dataclasses.replace(base, pixel_pitch_um=base.pixel_pitch_um * pitch_f,
                               olpf_strength=base.olpf_strength * olpf_f, cfa_pattern=pattern, noise=noise,
                               resolution_mp=base.resolution_mp / pitch_f ** 2)
