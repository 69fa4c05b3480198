"""EXIF, IPTC and XMP from the source photo into truepix's output, plus truepix's own record.

pyexiv2 (Exiv2) does the copying. What it copies verbatim is then corrected: the pixels are
upright now (Orientation -> 1), have a new size (PixelX/YDimension), no longer match the old
thumbnail, and must not inherit the source's file-structure or DNG tags. Losing the source's
metadata is a warning, never a failed photo; failing to write truepix's own record is an error.

The XMP record (namespace ``http://ns.truepix.org/1.0/``, prefix ``truepix``):
Xmp.truepix.Enhanced = "True", .Version, .Recipe, .Models, .Source, and for a developed RAW
.ColourSource (where its colour matrix came from: a key of ``io.rawcolour.COLOUR_SOURCES``);
Xmp.xmp.CreatorTool = "truepix <version>". ``read_truepix_flag`` reads it back so nothing is enhanced twice.  Also, when
the writer knows them: .SourceSHA256 (the original's content) and .RecipeSHA256 (``Recipe.sha256``),
which ``read_truepix_record`` gives back so that ``truepix process`` skips an original already
enhanced with the same recipe (``truepix.outputs``); .PrintSize, when the print resolution was
scaled with the pixels ("print size kept: 300 → 600 ppi", ``io.resolution``).
"""

from __future__ import annotations

import functools
import logging
import os

import pyexiv2

from .. import __version__
from .resolution import KEEP

log = logging.getLogger(__name__)

TRUEPIX_NS = "http://ns.truepix.org/1.0/"
pyexiv2.registerNs(TRUEPIX_NS, "truepix")
# Exiv2 logs to stdout, which would corrupt `truepix ... --json`; its errors also raise, and
# those are what truepix reports.
pyexiv2.set_log_level(4)

# IFD0 tags that describe how the *source* file stores its pixels: stale in any output, removed
# (a TIFF destination keeps its own values for them when the metadata is copied in).
_STRUCTURAL = frozenset(
    "NewSubfileType SubfileType ImageWidth ImageLength BitsPerSample Compression "
    "PhotometricInterpretation FillOrder StripOffsets SamplesPerPixel RowsPerStrip "
    "StripByteCounts PlanarConfiguration Predictor TileWidth TileLength TileOffsets "
    "TileByteCounts ExtraSamples SampleFormat JPEGTables JPEGInterchangeFormat "
    "JPEGInterchangeFormatLength YCbCrCoefficients YCbCrSubSampling YCbCrPositioning "
    "SubIFDs XMLPacket IPTCNAA InterColorProfile".split()
)
# Tags of a RAW/DNG source that would make readers treat our rendered output as raw data.
_RAW_ONLY = frozenset(
    "DNGVersion DNGBackwardVersion CFARepeatPatternDim CFAPattern CFAPlaneColor CFALayout "
    "LinearizationTable BlackLevelRepeatDim BlackLevel BlackLevelDeltaH BlackLevelDeltaV "
    "WhiteLevel DefaultScale DefaultCropOrigin DefaultCropSize ColorMatrix1 ColorMatrix2 "
    "CameraCalibration1 CameraCalibration2 ReductionMatrix1 ReductionMatrix2 AnalogBalance "
    "AsShotNeutral AsShotWhiteXY BaselineExposure BaselineNoise BaselineSharpness "
    "BayerGreenSplit LinearResponseLimit ChromaBlurRadius AntiAliasStrength "
    "ShadowScale DNGPrivateData MakerNoteSafety CalibrationIlluminant1 "
    "CalibrationIlluminant2 BestQualityScale RawDataUniqueID OriginalRawFileName "
    "OriginalRawFileData ActiveArea MaskedAreas AsShotICCProfile AsShotPreProfileMatrix "
    "CurrentICCProfile CurrentPreProfileMatrix ForwardMatrix1 ForwardMatrix2 OpcodeList1 "
    "OpcodeList2 OpcodeList3 NoiseProfile DefaultUserCrop ProfileName "
    "ProfileHueSatMapDims ProfileHueSatMapData1 ProfileHueSatMapData2 ProfileToneCurve "
    "ProfileEmbedPolicy ProfileCopyright ProfileLookTableDims ProfileLookTableData "
    "BaselineExposureOffset DefaultBlackRender NewRawImageDigest RawImageDigest "
    "OriginalRawFileDigest RawToPreviewGain CacheVersion CameraCalibrationSignature "
    "ProfileCalibrationSignature PreviewApplicationName PreviewApplicationVersion "
    "PreviewSettingsName PreviewSettingsDigest PreviewColorSpace PreviewDateTime "
    "OriginalDefaultFinalSize OriginalBestQualityFinalSize OriginalDefaultCropSize".split()
)
# IFD0 tags an output keeps; anything else a camera put in IFD0 (Kodak, old TIFF-EP bodies) is
# either an EXIF tag in the wrong IFD (moved to Exif.Photo, where readers and validators expect it)
# or a private tag whose meaning is tied to the source file (dropped).
_IFD0_KEPT = frozenset(
    "ImageDescription Make Model Orientation XResolution YResolution ResolutionUnit Software DateTime "
    "Artist HostComputer Copyright Rating RatingPercent XPTitle XPComment XPAuthor XPKeywords XPSubject "
    "DocumentName PageName ExifTag GPSTag".split()
)
_IFD0_TO_PHOTO = frozenset(
    "ExposureTime FNumber ExposureProgram ISOSpeedRatings SubjectDistance Flash FocalLength "
    "DateTimeOriginal ExposureBiasValue MeteringMode LightSource MaxApertureValue ShutterSpeedValue "
    "ApertureValue".split()
)
# Whole groups that describe the source's other images (thumbnail, previews, raw IFDs).
_SUB_IMAGE_GROUPS = ("Exif.Thumbnail.", "Exif.SubImage", "Exif.Image2.", "Exif.Image3.",
                     "Exif.Image4.", "Exif.Image5.", "Exif.SubThumb")
_XMP_STALE = ("Xmp.tiff.BitsPerSample", "Xmp.tiff.Compression", "Xmp.tiff.SamplesPerPixel",
              "Xmp.tiff.PhotometricInterpretation", "Xmp.tiff.PlanarConfiguration")


def copy_metadata(src, dst, *, width: int, height: int, xmp_info: dict | None = None,
                  orientation: int = 1, keep_target_exif: bool = False, resolution=KEEP) -> None:
    """Copy EXIF/IPTC/XMP from ``src`` (any file Exiv2 reads, RAWs included; None = nothing
    to copy) into ``dst`` in place, fix what the enhancement made stale, add the truepix record.

    width, height: the output's pixel size. xmp_info: {"recipe", "models", "source"}, strings
    (models may be a list), and optionally "extra": {XMP key: value} written as well.
    orientation: the output's EXIF orientation (1 for upright pixels; a linear DNG keeps the
    sensor's). keep_target_exif: add the source's tags to ``dst``'s own EXIF instead of replacing
    it (a linear DNG's DNG tags, which a whole-block copy would drop; maker notes are not carried
    then, since they do not survive a tag-by-tag copy). ICC is not touched: the encoder embedded it already.
    resolution: the output's print resolution (``io.resolution.Resolution``) that EXIF's and XMP's
    X/YResolution and ResolutionUnit are set to, so they agree with the file's own; None removes them
    (the output states none); ``KEEP`` copies the source's as they are.
    """
    # Everything is gathered and corrected in a tiny in-memory PNG, then written into ``dst``
    # once: Exiv2 rewrites the whole file on each write, and an output can be 600 MB. The hop
    # also keeps a TIFF-based source's SubIFDs (RAW previews, the DNG raw IFD) out of a TIFF
    # destination, where Exiv2 would copy their pixel data and refuse to delete them.
    hop = pyexiv2.ImageData(_tiny_png())
    try:
        if src is not None:
            try:
                source = _exiv2_source(src)
                try:
                    _copy_all(source, hop)
                finally:
                    source.close()
            except Exception as err:  # Exiv2 raises RuntimeError for most read/encode problems
                log.warning("%s: metadata not copied from %s (%s); the image is written without it",
                            os.path.basename(dst), os.path.basename(src), err)
        # The hop's structural tags are the source's: stale everywhere (a TIFF destination keeps
        # its own when the hop is copied in).
        _fix_exif(hop, width, height, orientation, resolution)
        _fix_xmp(hop, width, height, src, xmp_info or {}, orientation, resolution)
        target = pyexiv2.Image(os.fspath(dst))
        try:
            if keep_target_exif:
                _merge_into(hop, target)
            else:
                _copy_all(hop, target)
        finally:
            target.close()
    finally:
        hop.close()


def _copy_all(source, target) -> None:
    # comment=False: Exiv2 cannot write comments into TIFF; icc=False: a source without ICC
    # makes the copy fail, and the encoder has embedded the right profile already.
    source.copy_to_another_image(target, exif=True, iptc=True, xmp=True,
                                 comment=False, icc=False, thumbnail=False)


# EXIF groups carried tag by tag (maker-note groups are left out: they only survive a block copy).
_MERGED_GROUPS = ("Exif.Image.", "Exif.Photo.", "Exif.GPSInfo.", "Exif.Iop.")


def _merge_into(hop, target) -> None:
    """Add the hop's EXIF, IPTC and XMP to ``target`` without removing ``target``'s own tags."""
    exif = {k: v for k, v in hop.read_exif().items()
            if k.startswith(_MERGED_GROUPS) and k != "Exif.Photo.MakerNote"}
    own = target.read_exif()
    # The target's own tags win (its structure and, for a DNG, its colour description).
    exif = {k: v for k, v in exif.items() if k not in own or k == "Exif.Image.Orientation"}
    try:
        target.modify_exif(exif)  # one rewrite of the file
    except Exception:  # a value Exiv2 cannot parse back from its own string form: tag by tag
        for key, value in exif.items():
            try:
                target.modify_exif({key: value})
            except Exception:
                log.debug("metadata: %s not carried over", key)
    iptc = hop.read_iptc()
    if iptc:
        target.modify_iptc(iptc)
    target.modify_xmp(hop.read_xmp())


@functools.cache
def _tiny_png() -> bytes:
    import imagecodecs
    import numpy as np

    return imagecodecs.png_encode(np.zeros((1, 1), np.uint8))


def _resolution_tags(prefix: str, resolution, present) -> dict[str, str | None]:
    """``prefix``XResolution, YResolution, ResolutionUnit set to ``resolution`` (None: removed where
    ``present``); nothing for ``KEEP``."""
    keys = [f"{prefix}{t}" for t in ("XResolution", "YResolution", "ResolutionUnit")]
    if resolution == KEEP:
        return {}
    if resolution is None:
        return {k: None for k in keys if k in present}
    (xn, xd), (yn, yd) = resolution.rationals()
    return dict(zip(keys, (f"{xn}/{xd}", f"{yn}/{yd}", str(resolution.tiff_unit)), strict=True))


def _fix_exif(img: pyexiv2.Image, width: int, height: int, orientation: int = 1, resolution=KEEP) -> None:
    exif = img.read_exif()
    changes: dict[str, str | None] = {}
    for key, value in exif.items():
        tag = key.rsplit(".", 1)[-1]
        if key.startswith(_SUB_IMAGE_GROUPS):
            changes[key] = None
        elif key.startswith("Exif.Image."):
            if tag in _RAW_ONLY or tag in _STRUCTURAL:
                changes[key] = None
            elif tag in _IFD0_TO_PHOTO:
                changes[key] = None
                if f"Exif.Photo.{tag}" not in exif:
                    changes[f"Exif.Photo.{tag}"] = value
            elif tag not in _IFD0_KEPT:
                changes[key] = None
            elif tag == "ImageDescription" and str(value).startswith('{"shape"'):
                changes[key] = None  # tifffile's own JSON note about the source's array
    if "Exif.Image.Orientation" in exif or orientation != 1:
        changes["Exif.Image.Orientation"] = str(orientation)  # upright pixels: 1
    if any(k.startswith("Exif.Photo.") for k in exif):
        changes["Exif.Photo.PixelXDimension"] = str(width)
        changes["Exif.Photo.PixelYDimension"] = str(height)
    changes.update(_resolution_tags("Exif.Image.", resolution, exif))
    if changes:
        img.modify_exif(changes)
    if any(k.startswith("Exif.Thumbnail.") for k in exif):
        img.clear_thumbnail()


def _fix_xmp(img: pyexiv2.Image, width: int, height: int, src, info: dict, orientation: int = 1,
             resolution=KEEP) -> None:
    xmp = img.read_xmp()
    changes: dict[str, str | None] = {k: None for k in _XMP_STALE if k in xmp}
    # an editor's XMP copy of the resolution (Lightroom writes one) follows the file's, where present
    changes.update({k: v for k, v in _resolution_tags("Xmp.tiff.", resolution, xmp).items() if k in xmp})
    if "Xmp.tiff.Orientation" in xmp:
        changes["Xmp.tiff.Orientation"] = str(orientation)
    changes.update({str(k): str(v) for k, v in (info.get("extra") or {}).items()})
    for key, value in (("Xmp.exif.PixelXDimension", width), ("Xmp.exif.PixelYDimension", height),
                       ("Xmp.tiff.ImageWidth", width), ("Xmp.tiff.ImageLength", height)):
        if key in xmp:
            changes[key] = str(value)
    models = info.get("models", "")
    if isinstance(models, (list, tuple)):
        models = ", ".join(map(str, models))
    source = info.get("source") or (os.path.basename(src) if src is not None else "")
    changes.update({
        "Xmp.xmp.CreatorTool": f"truepix {__version__}",
        "Xmp.truepix.Enhanced": "True",
        "Xmp.truepix.Version": __version__,
        "Xmp.truepix.Recipe": str(info.get("recipe", "")),
        "Xmp.truepix.Models": str(models),
        "Xmp.truepix.Source": str(source),
    })
    for key, field in (("source_sha256", "SourceSHA256"), ("recipe_sha256", "RecipeSHA256"),
                       ("print_size", "PrintSize")):
        if info.get(key):
            changes[f"Xmp.truepix.{field}"] = str(info[key])
    img.modify_xmp(changes)


IN_MEMORY_LIMIT = 512 << 20  # sources up to this size are parsed from memory (io/regular.py)


def _exiv2_source(path):
    """Exiv2's view of a source photo, read through ``io.regular``: never a FIFO or device, and the
    bytes read with the GIL released, so neither can freeze the process.  A file over
    IN_MEMORY_LIMIT is opened by name after the check (Exiv2 maps it; the rest of the photo is read
    anyway)."""
    from truepix.io.regular import check_regular, read_regular

    data = read_regular(path, IN_MEMORY_LIMIT)
    if data is None:
        check_regular(path)
        return pyexiv2.Image(os.fspath(path))
    return pyexiv2.ImageData(data)


def _truepix_xmp(path, by_name: bool = False) -> dict | None:
    """``path``'s XMP when it carries truepix's record (Xmp.truepix.Enhanced = True), else None
    (also when its metadata cannot be read).  ``by_name``: Exiv2 opens the regular file by name and
    reads only the parts that hold metadata (an output can be a few hundred MB), instead of the
    small-file path of ``_exiv2_source``."""
    from truepix.io.regular import check_regular

    try:
        if by_name:
            check_regular(path)
        img = pyexiv2.Image(os.fspath(path)) if by_name else _exiv2_source(path)
        try:
            xmp = img.read_xmp()
        finally:
            img.close()
    except Exception:
        return None
    return xmp if str(xmp.get("Xmp.truepix.Enhanced", "")).strip().lower() == "true" else None


def read_truepix_flag(path) -> bool:
    """True when ``path`` carries truepix's XMP record (it is already an enhanced output).

    A file whose metadata cannot be read counts as not enhanced.
    """
    return _truepix_xmp(path) is not None


def read_truepix_record(path) -> dict[str, str] | None:
    """truepix's XMP record in the output ``path``: {"recipe", "source", "source_sha256",
    "recipe_sha256"} (a field the output lacks is ""), or None when ``path`` is not a truepix output
    or its metadata cannot be read.  Exiv2 opens the file by name (after ``check_regular``) and
    reads only the parts that hold metadata: an output can be a few hundred MB."""
    xmp = _truepix_xmp(path, by_name=True)
    if xmp is None:
        return None
    return {key: str(xmp.get(f"Xmp.truepix.{field}", "") or "")
            for key, field in (("recipe", "Recipe"), ("source", "Source"), ("source_sha256", "SourceSHA256"),
                               ("recipe_sha256", "RecipeSHA256"))}


def read_truepix_source(path) -> str | None:
    """The source file name truepix's XMP record in ``path`` names (``Xmp.truepix.Source``), or None
    when ``path`` is not a truepix output (or its metadata cannot be read)."""
    xmp = _truepix_xmp(path)
    source = xmp.get("Xmp.truepix.Source") if xmp else None
    return str(source) if source else None
