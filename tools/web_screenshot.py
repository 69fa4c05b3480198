"""Make docs/web-page.png: the daemon's web page with a real before/after of the bundled sample.

    python tools/web_screenshot.py [--out docs/web-page.png]

A throw-away daemon (its own HOME and XDG folders in a temporary folder, a free port) enhances
samples/colorchart.jpg with the default recipe; headless Chromium (Debian's chromium + chromium-driver,
driven by selenium from the `dev` extra) signs in through `truepix open --print`, opens the job, picks
a point on its thumbnail, sets the slider half-way at 200% and takes the screenshot, which is stored as
an 8-bit palette PNG to stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 -- an element not there yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"web_screenshot: {what} did not happen within {timeout:g} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "web-page.png")
    parser.add_argument("--x", type=float, default=0.55, help="the crop's centre, 0..1 across the photo")
    parser.add_argument("--y", type=float, default=0.22, help="... and down")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    root = pathlib.Path(tempfile.mkdtemp(prefix="truepix-shot-"))
    env = {**os.environ, "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "config"),
           "XDG_DATA_HOME": str(root / "data"), "XDG_STATE_HOME": str(root / "state"),
           "XDG_CACHE_HOME": str(root / "cache"), "TRUEPIX_CONFIG": str(root / "config.toml")}
    (root / "config.toml").write_text("folders = []\n")
    photo = root / "Pictures" / "colorchart.jpg"
    photo.parent.mkdir(parents=True)
    shutil.copy(REPO / "samples" / "colorchart.jpg", photo)
    truepix = [sys.executable, "-m", "truepix.cli"]
    daemon = subprocess.Popen([*truepix, "run", "--no-tray", "--port", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        state = root / "state" / "truepix" / "daemon.json"
        _wait(lambda: json.loads(state.read_text())["pid"] == daemon.pid, 60, "the daemon's start")
        port = json.loads(state.read_text())["port"]
        token = (root / "config" / "truepix" / "token").read_text().strip()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", method="POST",
                                         data=json.dumps({"paths": [str(photo)]}).encode(),
                                         headers={"Authorization": f"Bearer {token}"})
        job = json.loads(urllib.request.urlopen(request, timeout=30).read())["jobs"][0]["id"]
        url = subprocess.run([*truepix, "open", "--print"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        driver.get(url)
        item = f'.job[data-id="{job}"][data-state="done"] .name'
        _wait(lambda: driver.find_element(By.CSS_SELECTOR, item), 120, "the job's end")
        driver.find_element(By.CSS_SELECTOR, item).click()
        thumb = driver.find_element(By.CSS_SELECTOR, "#thumb")
        loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
        _wait(lambda: driver.execute_script(loaded, thumb), 30, "the thumbnail")
        size = thumb.size
        ActionChains(driver).move_to_element_with_offset(
            thumb, int(size["width"] * (args.x - 0.5)), int(size["height"] * (args.y - 0.5))).click().perform()
        driver.find_element(By.CSS_SELECTOR, "#zoom-2").click()
        for side in ("#before", "#after"):
            img = driver.find_element(By.CSS_SELECTOR, side)
            _wait(lambda img=img: "zoom=2" in img.get_attribute("src") and driver.execute_script(loaded, img), 30,
                  f"the {side[1:]} crop")
        _wait(lambda: "licence" in driver.find_element(By.CSS_SELECTOR, "#models").text, 10, "the models list")
        shot = root / "shot.png"
        driver.save_screenshot(str(shot))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            args.out, optimize=True)
        print(f"{args.out}: {args.out.stat().st_size // 1024} KB")
    finally:
        driver.quit()
        daemon.terminate()
        daemon.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
