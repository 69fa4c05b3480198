"""Which of a source DNG's own tags a linear DNG developed from it carries: one table, tag by tag.

The decision is made against the DNG specification (1.7) for what truepix writes: the source
camera's own linear RGB, demosaiced, black 0 and white 65535, the visible area, with the same
ColorMatrix/ForwardMatrix (``io/dng.py``).  ``carried_tags`` applies it to the tags ``io.raw``
read from the source's IFD0 and raw IFD.
"""

from __future__ import annotations

import numpy as np

RATIONAL, SRATIONAL = 5, 10  # TIFF types

# What a linear DNG made from a DNG does with each of the source's DNG tags (IFD0 and raw IFD).
# The output holds the source camera's own linear RGB (LibRaw's decode, or the network's demosaic
# of its mosaic), black 0, white 65535, the visible area, every opcode LibRaw applies already
# applied: what describes the camera or its RGB stays true, what describes the source's stored
# values, layout, pixels or previews does not.
#   CARRY: copied verbatim.  DROP: left out.  OURS: truepix writes its own value (``io.dng.dng_tags``).
#   SAME_GRID: carried when the output keeps the source's pixel grid (no upscale), else dropped.
# A tag not in the table is dropped (an unknown tag's truth cannot be vouched for).
CARRY, DROP, OURS, SAME_GRID = "carry", "drop", "ours", "same grid"
SOURCE_TAGS = {
    50706: ("DNGVersion", OURS),               # the output's own format version
    50707: ("DNGBackwardVersion", OURS),
    50708: ("UniqueCameraModel", OURS),        # the same name, written for every RAW (not only DNGs)
    50709: ("LocalizedCameraModel", CARRY),    # the camera's name
    50710: ("CFAPlaneColor", DROP),            # CFA layout: the output is demosaiced
    50711: ("CFALayout", DROP),
    50712: ("LinearizationTable", DROP),       # the source's stored values: ours are linear already
    50713: ("BlackLevelRepeatDim", DROP),
    50714: ("BlackLevel", OURS),               # 0
    50715: ("BlackLevelDeltaH", DROP),
    50716: ("BlackLevelDeltaV", DROP),
    50717: ("WhiteLevel", OURS),               # 65535
    50718: ("DefaultScale", CARRY),            # pixel aspect: kept by the decode and by a uniform upscale
    50719: ("DefaultCropOrigin", OURS),        # LibRaw's crop, in the output's pixels
    50720: ("DefaultCropSize", OURS),
    50721: ("ColorMatrix1", CARRY),            # the camera RGB is the same: its colour description holds
    50722: ("ColorMatrix2", CARRY),
    50723: ("CameraCalibration1", CARRY),
    50724: ("CameraCalibration2", CARRY),
    50725: ("ReductionMatrix1", DROP),         # for cameras of 4+ colour planes: the output has 3
    50726: ("ReductionMatrix2", DROP),
    50727: ("AnalogBalance", CARRY),
    50728: ("AsShotNeutral", OURS),            # the white balance truepix divided out
    50729: ("AsShotWhiteXY", DROP),            # AsShotNeutral is written instead (only one may be)
    50730: ("BaselineExposure", CARRY),        # camera facts about the same linear RGB
    50731: ("BaselineNoise", CARRY),
    50732: ("BaselineSharpness", CARRY),
    50733: ("BayerGreenSplit", DROP),          # CFA only
    50734: ("LinearResponseLimit", CARRY),     # a fraction of white: the scale to 65535 keeps it
    50735: ("CameraSerialNumber", CARRY),      # identity of the camera, lens and original
    50736: ("LensInfo", CARRY),
    50737: ("ChromaBlurRadius", DROP),         # demosaic advice: the demosaic is done
    50738: ("AntiAliasStrength", CARRY),       # the sensor's filter, a fact of the camera
    50739: ("ShadowScale", CARRY),
    50740: ("DNGPrivateData", DROP),           # maker-private, tied to the source file's data
    50741: ("MakerNoteSafety", DROP),          # goes with DNGPrivateData
    50778: ("CalibrationIlluminant1", CARRY),
    50779: ("CalibrationIlluminant2", CARRY),
    50780: ("BestQualityScale", SAME_GRID),    # relative to the source's size
    50781: ("RawDataUniqueID", DROP),          # names the source's raw data; readers key caches on it
    50827: ("OriginalRawFileName", CARRY),     # the original's name: still the original
    50828: ("OriginalRawFileData", CARRY),     # the embedded original itself (its digest goes with it)
    50829: ("ActiveArea", DROP),               # the output is the active area already
    50830: ("MaskedAreas", DROP),
    50831: ("AsShotICCProfile", CARRY),        # renderings of the same camera RGB
    50832: ("AsShotPreProfileMatrix", CARRY),
    50833: ("CurrentICCProfile", CARRY),
    50834: ("CurrentPreProfileMatrix", CARRY),
    50879: ("ColorimetricReference", CARRY),
    50931: ("CameraCalibrationSignature", CARRY),
    50932: ("ProfileCalibrationSignature", CARRY),
    50933: ("ExtraCameraProfiles", DROP),      # offsets of IFDs inside the source file
    50934: ("AsShotProfileName", CARRY),
    50935: ("NoiseReductionApplied", OURS),
    50936: ("ProfileName", CARRY),             # the profile goes over whole (DEPENDENT_NAMES): still its name
    50937: ("ProfileHueSatMapDims", CARRY),    # profile tables act on the same camera RGB after the
    50938: ("ProfileHueSatMapData1", CARRY),   # same matrices: still true
    50939: ("ProfileHueSatMapData2", CARRY),
    50940: ("ProfileToneCurve", CARRY),
    50941: ("ProfileEmbedPolicy", CARRY),
    50942: ("ProfileCopyright", CARRY),
    50964: ("ForwardMatrix1", CARRY),
    50965: ("ForwardMatrix2", CARRY),
    50966: ("PreviewApplicationName", DROP),   # the output has no preview
    50967: ("PreviewApplicationVersion", DROP),
    50968: ("PreviewSettingsName", DROP),
    50969: ("PreviewSettingsDigest", DROP),
    50970: ("PreviewColorSpace", DROP),
    50971: ("PreviewDateTime", DROP),
    50972: ("RawImageDigest", DROP),           # digests of the source's raw data: would call ours damaged
    50973: ("OriginalRawFileDigest", CARRY),   # of OriginalRawFileData, carried with it
    50974: ("SubTileBlockSize", DROP),         # the source's layout
    50975: ("RowInterleaveFactor", DROP),
    50981: ("ProfileLookTableDims", CARRY),
    50982: ("ProfileLookTableData", CARRY),
    51008: ("OpcodeList1", DROP),              # on the stored raw values, before linearisation: no
    #                                            meaning for ours
    51009: ("OpcodeList2", DROP),              # after linearisation, before demosaic: LibRaw applied what
    #                                            it reads (a lossy DNG's MapPolynomial curves), never
    #                                            twice; per-CFA-plane maps cannot act on demosaiced RGB
    51022: ("OpcodeList3", SAME_GRID),         # after demosaic (lens warp, vignetting): not applied by
    #                                            truepix, still owed, in the source's pixel grid
    51041: ("NoiseProfile", DROP),             # the noise was reduced (NoiseReductionApplied)
    51043: ("TimeCodes", CARRY),               # CinemaDNG: when and by which camera
    51044: ("FrameRate", CARRY),
    51058: ("TStop", CARRY),
    51081: ("ReelName", CARRY),
    51089: ("OriginalDefaultFinalSize", CARRY),  # sizes of the original this file derives from
    51090: ("OriginalBestQualityFinalSize", CARRY),
    51091: ("OriginalDefaultCropSize", CARRY),
    51105: ("CameraLabel", CARRY),
    51107: ("ProfileHueSatMapEncoding", CARRY),
    51108: ("ProfileLookTableEncoding", CARRY),
    51109: ("BaselineExposureOffset", CARRY),
    51110: ("DefaultBlackRender", CARRY),
    51111: ("NewRawImageDigest", DROP),
    51112: ("RawToPreviewGain", DROP),
    51125: ("DefaultUserCrop", CARRY),          # fractions of the default crop: any scale
    51177: ("DepthFormat", DROP),               # depth and semantic maps, enhance and JPEG XL settings
    51178: ("DepthNear", DROP),                 # describe images or encodings the output lacks
    51179: ("DepthFar", DROP),
    51180: ("DepthUnits", DROP),
    51181: ("DepthMeasureType", DROP),
    51182: ("EnhanceParams", DROP),
    52525: ("ProfileGainTableMap", CARRY),
    52526: ("SemanticName", DROP),
    52528: ("SemanticInstanceID", DROP),
    52529: ("CalibrationIlluminant3", CARRY),
    52530: ("CameraCalibration3", CARRY),
    52531: ("ColorMatrix3", CARRY),
    52532: ("ForwardMatrix3", CARRY),
    52533: ("IlluminantData1", CARRY),
    52534: ("IlluminantData2", CARRY),
    52535: ("IlluminantData3", CARRY),
    52536: ("MaskSubArea", DROP),
    52537: ("ProfileHueSatMapData3", CARRY),
    52538: ("ReductionMatrix3", DROP),
    52543: ("RGBTables", CARRY),
    52544: ("ProfileGainTableMap2", CARRY),
    52547: ("ColumnInterleaveFactor", DROP),
    52548: ("ImageSequenceInfo", CARRY),
    52550: ("ImageStats", DROP),
    52551: ("ProfileDynamicRange", CARRY),
    52552: ("ProfileGroupName", CARRY),
    52553: ("JXLDistance", DROP),
    52554: ("JXLEffort", DROP),
    52555: ("JXLDecodeSpeed", DROP),
}
# Names that speak of other tags go only with everything they name that the source has: the
# profile's name, copyright, embed policy and signature name its matrices and tables, the
# calibration signature the CameraCalibration matrices, the digest its data.
_PROFILE = (50721, 50722, 50937, 50938, 50939, 50940, 50964, 50965, 50981, 50982, 51107, 51108,
            52525, 52531, 52532, 52537, 52543, 52544)
DEPENDENT_NAMES = {
    50936: _PROFILE, 50934: _PROFILE, 50941: (50936,), 50942: (50936,), 50932: (50936,),
    52551: (50936,), 52552: (50936,),
    50931: (50723, 50724, 52530),
    50973: (50828,),
}


def carried_tags(source: dict, same_grid: bool) -> set[int]:
    """The codes of ``source`` (``RawMosaic.dng_tags``) a linear DNG carries verbatim: CARRY, and
    SAME_GRID when ``same_grid``, that hold a value, less every name (DEPENDENT_NAMES) of which
    something it names is not carried."""
    wanted = {CARRY, SAME_GRID} if same_grid else {CARRY}
    keep = {code for code, tag in source.items()
            if SOURCE_TAGS.get(code, ("", DROP))[1] in wanted and _has_value(code, tag)}
    changed = True
    while changed:  # a dropped name orphans the names that name it (ProfileCopyright: ProfileName)
        changed = False
        for name, named in DEPENDENT_NAMES.items():
            if name in keep and any(c in source and c not in keep for c in named):
                keep.discard(name)
                changed = True
    return keep


def _has_value(code: int, tag: tuple) -> bool:
    """False for a rational with a 0/0 in it (undefined: exiftool warns), except LensInfo, where
    DNG spells an unknown aperture so."""
    _name, value, dtype, _count = tag
    if dtype not in (RATIONAL, SRATIONAL) or code == 50736:
        return True
    return 0 not in [int(x) for x in np.asarray(value).ravel()[1::2]]
