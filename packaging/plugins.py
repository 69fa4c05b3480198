"""Package truepix's Lightroom Classic plug-in and install its darktable script.

    python packaging/plugins.py lightroom [--out DIR]
        builds DIR/truepix.lrplugin.zip (default DIR: dist/); unzip it anywhere and add the
        truepix.lrplugin folder in Lightroom Classic: File > Plug-in Manager > Add.

    python packaging/plugins.py darktable [--config-dir DIR] [--no-luarc]
        copies the script to DIR/lua/contrib/truepix.lua (with its JSON helper beside it as
        truepix_json.lua) and adds `require "contrib/truepix"` to DIR/luarc, unless it is there
        already (DIR: darktable's configuration folder: ~/.config/darktable on Linux and macOS,
        %LOCALAPPDATA%\\darktable on Windows). With darktable's script manager, leave the luarc
        alone (--no-luarc) and start "truepix" there.

Standard library only, so it runs with any Python 3.9+ before truepix is installed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]
LRPLUGIN = REPO / "plugin_lua" / "truepix.lrplugin"
DT_SCRIPT = REPO / "plugin_lua" / "darktable" / "truepix.lua"
JSON_LUA = LRPLUGIN / "json.lua"
LUARC_LINE = 'require "contrib/truepix"'


def build_lightroom_zip(out_dir: pathlib.Path) -> pathlib.Path:
    """Zip the plug-in folder as ``truepix.lrplugin/...`` into ``out_dir/truepix.lrplugin.zip`` (atomically)."""
    files = sorted(p for p in LRPLUGIN.iterdir() if p.is_file() and p.suffix == ".lua")
    if not (LRPLUGIN / "Info.lua").is_file():
        raise SystemExit(f"{LRPLUGIN}: Info.lua is missing; is this a truepix checkout?")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "truepix.lrplugin.zip"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".truepix.lrplugin.", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for path in files:
                info = zipfile.ZipInfo(f"truepix.lrplugin/{path.name}", date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, path.read_bytes())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def darktable_config_dir() -> pathlib.Path:
    """darktable's configuration folder on this system (where its ``luarc`` and ``lua/`` live)."""
    if sys.platform == "win32":
        return pathlib.Path(os.environ.get("LOCALAPPDATA", pathlib.Path.home() / "AppData" / "Local")) / "darktable"
    if sys.platform == "darwin":
        return pathlib.Path.home() / ".config" / "darktable"
    return pathlib.Path(os.environ.get("XDG_CONFIG_HOME") or pathlib.Path.home() / ".config") / "darktable"


def _copy(src: pathlib.Path, dst: pathlib.Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def install_darktable(config_dir: pathlib.Path, luarc: bool = True) -> list[str]:
    """Install the script into ``config_dir``; returns what was done, one line each."""
    if not DT_SCRIPT.is_file():
        raise SystemExit(f"{DT_SCRIPT} is missing; is this a truepix checkout?")
    contrib = config_dir / "lua" / "contrib"
    contrib.mkdir(parents=True, exist_ok=True)
    _copy(DT_SCRIPT, contrib / "truepix.lua")
    _copy(JSON_LUA, contrib / "truepix_json.lua")
    done = [f"installed {contrib / 'truepix.lua'} and {contrib / 'truepix_json.lua'}"]
    if luarc:
        rc = config_dir / "luarc"
        lines = rc.read_text().splitlines() if rc.exists() else []
        if any(line.strip() == LUARC_LINE for line in lines):
            done.append(f"{rc} already loads it")
        else:
            rc.write_text("\n".join([*lines, LUARC_LINE]) + "\n")
            done.append(f"added '{LUARC_LINE}' to {rc}")
    done.append("restart darktable; in the export module choose target storage \"truepix\"")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python packaging/plugins.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lr = sub.add_parser("lightroom", help="build dist/truepix.lrplugin.zip")
    lr.add_argument("--out", type=pathlib.Path, default=REPO / "dist", help="folder for the zip (default: dist/)")
    dt = sub.add_parser("darktable", help="install the darktable script")
    dt.add_argument("--config-dir", type=pathlib.Path, default=None,
                    help=f"darktable's configuration folder (default: {darktable_config_dir()})")
    dt.add_argument("--no-luarc", action="store_true", help="do not add the require line to luarc")
    args = parser.parse_args(argv)
    if args.what == "lightroom":
        path = build_lightroom_zip(args.out)
        print(f"built {path}: unzip it, then in Lightroom Classic File > Plug-in Manager > Add, "
              "and choose the truepix.lrplugin folder")
    else:
        for line in install_darktable(args.config_dir or darktable_config_dir(), luarc=not args.no_luarc):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
