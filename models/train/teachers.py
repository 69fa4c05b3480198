"""Clean photographic teachers for the upscalers, built from Debian packages.

A teacher must be what the network should output, so it may carry no JPEG blocks, ringing or
sensor noise of its own: the network would learn to invent them.  Camera photographs (the
wallpapers Debian ships) all carry some.  Downscaled by an integer factor of at least 2 with
an antialiasing filter, each output pixel averages 4 or more source pixels: noise drops by
that factor, the 8x8 JPEG blocks shrink below a pixel and the filter removes what is above
the new Nyquist frequency, so what is left is sharp, clean detail.

The sources are recorded in ``models/data/teachers.toml`` (package, version, path, licence,
credit, sha256); the images themselves are never committed.  This script fetches each
package with ``apt-get download`` into a cache (default ``~/.cache/truepix-teachers``),
checks every file against its sha256 and writes ``DIR/NAME.png`` (8-bit sRGB), skipping
outputs that already exist::

    PYTHONPATH=daemon:. python -m models.train.teachers --out /work/teachers
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import pathlib
import subprocess
import sys
import tarfile
import tomllib

from PIL import Image, ImageCms, ImageOps

MANIFEST = pathlib.Path(__file__).resolve().parents[1] / "data" / "teachers.toml"
CACHE = pathlib.Path.home() / ".cache" / "truepix-teachers"
MAX_SIDE = 1200  # long side of a teacher, at most
MIN_FACTOR = 2  # reduce at least this much, whatever the size


def load_manifest(path: pathlib.Path = MANIFEST) -> list[dict]:
    with open(path, "rb") as f:
        return tomllib.load(f)["image"]


def reduction(width: int, height: int) -> int:
    """Integer factor (>= MIN_FACTOR) that brings the long side to MAX_SIDE or below."""
    return max(MIN_FACTOR, math.ceil(max(width, height) / MAX_SIDE))


def downscale(im: Image.Image) -> Image.Image:
    """RGB image -> reduced by an integer factor k (``reduction``): the image is cropped to a
    multiple of k so each output pixel covers exactly k x k source pixels, then box-reduced
    and Lanczos-filtered (Pillow's ``reducing_gap`` does the box step for large k)."""
    k = reduction(*im.size)
    w, h = im.size[0] // k, im.size[1] // k
    im = im.crop((0, 0, w * k, h * k))
    return im.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)


def to_srgb(im: Image.Image) -> Image.Image:
    """Upright 8-bit RGB in sRGB: EXIF orientation applied, an embedded ICC profile converted."""
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile")
    if "A" in im.getbands() or "transparency" in im.info:
        im = im.convert("RGBA")
        if im.getchannel("A").getextrema()[0] < 255:  # a photograph is opaque
            raise ValueError("image has transparency")
    im = im.convert("RGB")
    if icc:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "sRGB" not in ImageCms.getProfileDescription(src):
            im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return im


def fetch_deb(package: str, version: str, cache: pathlib.Path) -> pathlib.Path:
    """The .deb of package=version, downloaded once with apt-get into the cache."""
    folder = cache / "debs" / f"{package}_{version.replace(':', '%3a')}"
    debs = sorted(folder.glob("*.deb"))
    if not debs:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=folder,
                              capture_output=True, text=True)
        debs = sorted(folder.glob("*.deb"))
        if done.returncode or not debs:
            sys.exit(f"apt-get download {package}={version} failed (run 'apt-get update'; "
                     f"is this Debian 12 with that version?):\n{done.stderr.strip()}")
    return debs[0]


def read_members(deb: pathlib.Path, paths: set[str]) -> dict[str, bytes]:
    """Contents of the given files (paths inside the package, symlinks not followed)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    found = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in paths and member.isfile():
                found[name] = tar.extractfile(member).read()
    proc.wait()
    if proc.returncode:
        sys.exit(f"dpkg-deb could not read {deb}")
    return found


def build(out: pathlib.Path, cache: pathlib.Path, rows: list[dict]) -> tuple[int, int, float]:
    """Write the missing teachers; returns (written, skipped, megapixels of all outputs)."""
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    by_deb: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if (out / f"{row['name']}.png").exists():
            skipped += 1
        else:
            by_deb.setdefault((row["package"], row["version"]), []).append(row)
    for (package, version), group in by_deb.items():
        files = read_members(fetch_deb(package, version, cache), {r["path"] for r in group})
        for row in group:
            data = files.get(row["path"])
            if data is None:
                sys.exit(f"{row['path']} is not a file in {package} {version}")
            digest = hashlib.sha256(data).hexdigest()
            if digest != row["sha256"]:
                sys.exit(f"sha256 mismatch for {package} {version} {row['path']}:\n"
                         f"  manifest {row['sha256']}\n  file     {digest}\nrefusing to use it")
            with Image.open(io.BytesIO(data)) as im:
                teacher = downscale(to_srgb(im))
            target = out / f"{row['name']}.png"
            tmp = target.with_suffix(".tmp.png")
            teacher.save(tmp, optimize=False)
            tmp.replace(target)  # never leave a half-written teacher behind
            written += 1
    mpix = 0.0
    for row in rows:
        with Image.open(out / f"{row['name']}.png") as im:
            mpix += im.size[0] * im.size[1] / 1e6
    return written, skipped, mpix


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, required=True, help="folder for the teacher PNGs")
    ap.add_argument("--cache", type=pathlib.Path, default=CACHE, help="where the .deb files are kept")
    ap.add_argument("--manifest", type=pathlib.Path, default=MANIFEST)
    args = ap.parse_args(argv)
    rows = load_manifest(args.manifest)
    written, skipped, mpix = build(args.out, args.cache, rows)
    packages = len({r["package"] for r in rows})
    print(f"teachers: {len(rows)} images from {packages} packages in {args.out} "
          f"({written} written, {skipped} already there), {mpix:.1f} megapixels")


if __name__ == "__main__":
    main()
