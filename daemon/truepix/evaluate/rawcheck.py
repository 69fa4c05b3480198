"""Develop every RAW file in a folder and check each linear DNG with the tools raw editors use.

    python -m truepix.evaluate.rawcheck ../shared/data/raw [--json FILE]

For each file: ``truepix process --recipe develop`` in a child process (wall seconds and peak RSS of
that process), then, for the DNG it wrote: LibRaw (rawpy) opens and renders it, ``exiftool
-validate`` (errors and warnings counted), and ``darktable-cli`` renders it to a JPEG.  Files that
cannot be developed are listed with the message truepix gave.  Tools that are not installed are
reported as such, not as failures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile


def _develop(src: pathlib.Path, out_dir: pathlib.Path) -> dict:
    code = ("import json, resource, sys, time, pathlib, dataclasses\n"
            "from truepix.process import process_file\n"
            "from truepix.recipes import BUILTIN\n"
            "t0 = time.perf_counter()\n"
            "r = process_file(pathlib.Path(sys.argv[1]), dataclasses.replace(BUILTIN['develop'], "
            "output=pathlib.Path(sys.argv[2])))\n"
            "d = r.as_dict(); d['seconds'] = round(time.perf_counter() - t0, 2)\n"
            "d['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
            "print(json.dumps(d))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(out_dir)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "crashed", "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(folder: pathlib.Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="truepix-rawcheck-") as tmp:
        out = pathlib.Path(tmp)
        for src in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            res = _develop(src, out)
            row = {"file": src.name, "status": res["status"], "seconds": res.get("seconds"),
                   "peak_rss_mb": res.get("peak_rss_mb"), "notes": res.get("notes", []),
                   "error": res.get("error"), "size": f"{res.get('width')}x{res.get('height')}"}
            if res["status"] == "done":
                dng = res["output"]
                try:
                    import rawpy

                    with rawpy.imread(dng) as raw:
                        raw.postprocess(use_camera_wb=True, half_size=True)
                        row["libraw"] = f"ok ({raw.raw_type.name})"
                except Exception as e:  # a DNG LibRaw cannot read is exactly what this check reports
                    row["libraw"] = f"FAILED: {e}"
                if shutil.which("exiftool"):
                    v = subprocess.run(["exiftool", "-validate", "-warning", "-error", "-a", dng],
                                       capture_output=True, text=True).stdout
                    line = next((ln for ln in v.splitlines() if ln.startswith("Validate")), "Validate : ?")
                    row["exiftool_validate"] = line.split(":", 1)[1].strip()
                else:
                    row["exiftool_validate"] = "exiftool not installed"
                if shutil.which("darktable-cli"):
                    jpg = out / (src.stem + "-dt.jpg")
                    p = subprocess.run(["darktable-cli", dng, str(jpg), "--core", "--configdir", str(out / "dt"),
                                        "--library", ":memory:"], capture_output=True, text=True, timeout=300)
                    row["darktable_cli"] = "rendered" if p.returncode == 0 and jpg.exists() else \
                        f"FAILED (exit {p.returncode})"
                else:
                    row["darktable_cli"] = "darktable not installed"
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| file | result | size | seconds | peak RSS (MB) | LibRaw reads the DNG | exiftool -validate | "
             "darktable-cli |", "|---|---|---|---:|---:|---|---|---|"]
    for r in rows:
        if r["status"] == "done":
            result = "linear DNG" + (f" ({'; '.join(n for n in r['notes'] if not n.startswith('raw noise'))})"
                                     if any(not n.startswith("raw noise") for n in r["notes"]) else "")
            lines.append(f"| {r['file']} | {result} | {r['size']} | {r['seconds']:.1f} | {r['peak_rss_mb']} | "
                         f"{r['libraw']} | {r['exiftool_validate']} | {r['darktable_cli']} |")
        else:
            lines.append(f"| {r['file']} | {r['status']}: {r['error']} | | {r['seconds'] or 0:.1f} | | | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=pathlib.Path)
    p.add_argument("--json", type=pathlib.Path)
    a = p.parse_args(argv)
    rows = check(a.folder)
    print(format_table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
