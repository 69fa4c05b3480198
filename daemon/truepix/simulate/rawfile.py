"""Make a Bayer raw file (CFA DNG) of a given size from sharp photos, through the camera simulation.

    python -m truepix.simulate.rawfile --data ../shared/data/sr/BSD100 --out sim24.dng --mp 24 --iso 1600

The scene is a mosaic of the sharp images in ``--data`` (each 3:2 cell one photo, portraits turned,
flipped on reuse) at the requested size; ``truepix.simulate.pipeline.camera_raw`` photographs it
with a camera profile (lens and diffraction at ``--f-number``, OLPF, CFA, noise at ``--iso``), and
the data is written as a 14-bit (or the profile's) CFA DNG with ISO, white balance and a colour
matrix, as a camera would.  For benchmarks and end-to-end tests of the RAW development.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


def scene(files: list[pathlib.Path], height: int, width: int, cell_h: int = 320) -> np.ndarray:
    """(height, width, 3) sRGB float32: the photos in ``files`` tiled as 3:2 cells ``cell_h`` tall."""
    cell_w = cell_h * 3 // 2
    out = np.empty((height, width, 3), np.float32)
    k = 0
    for y in range(0, height, cell_h):
        for x in range(0, width, cell_w):
            with Image.open(files[k % len(files)]) as im:
                a = np.asarray(im.convert("RGB"), np.float32) / 255.0
            if a.shape[0] > a.shape[1]:
                a = np.rot90(a)
            if (k // len(files)) % 2:
                a = a[:, ::-1]
            k += 1
            if a.shape[0] < cell_h or a.shape[1] < cell_w:
                a = np.asarray(Image.fromarray(np.round(a * 255).astype(np.uint8)).resize(
                    (max(cell_w, a.shape[1]), max(cell_h, a.shape[0])), Image.LANCZOS), np.float32) / 255.0
            h, w = min(cell_h, height - y), min(cell_w, width - x)
            out[y:y + h, x:x + w] = a[:h, :w]
    return out


def main(argv=None) -> int:
    from truepix.io.dng import write_cfa_dng
    from truepix.simulate.camera import PROFILES
    from truepix.simulate.pipeline import Degradation, camera_raw

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=pathlib.Path, required=True, help="folder of sharp photos")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--mp", type=float, default=24.0, help="megapixels (3:2)")
    p.add_argument("--profile", default="apsc24", choices=sorted(PROFILES))
    p.add_argument("--iso", type=float, default=1600)
    p.add_argument("--f-number", type=float, default=5.6)
    p.add_argument("--exposure-ev", type=float, default=-1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    files = sorted(f for f in a.data.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"rawfile: no images in {a.data}")
    width = int(round(math.sqrt(a.mp * 1e6 * 1.5))) // 2 * 2
    height = int(round(width / 1.5)) // 2 * 2
    prof = PROFILES[a.profile]
    wb = (2.0, 1.0, 1.6)
    deg = Degradation(profile=prof.name, f_number=a.f_number, aberration_sigma_center_px=0.3,
                      aberration_sigma_corner_px=0.6, olpf_strength=prof.olpf_strength, iso=a.iso,
                      exposure_ev=a.exposure_ev, wb_gains=wb)
    dn = camera_raw(scene(files, height, width), deg, prof, np.random.default_rng(a.seed))
    nm = prof.noise
    write_cfa_dng(a.out, dn, prof.cfa_pattern, white=nm.white_dn, black=nm.black_level_dn,
                  neutral=1 / np.asarray(wb), model=f"truepix simulated {prof.name}", iso=a.iso)
    print(f"{a.out}: {width}x{height} {prof.cfa_pattern} mosaic, ISO {a.iso:g}, f/{a.f_number:g}, "
          f"{a.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
