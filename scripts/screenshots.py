"""The README's screenshots, taken in headless Chromium: the playground, a run's report.html, the live run view.

    python scripts/screenshots.py RUN [--out docs/images] [--steps 1500]

RUN is a finished run folder (its report.html is written again). The
playground plays the ring with the default settings (seed 0) for --steps
steps in the server, then the page is photographed.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars")


def chromium(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    o = Options()
    o.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        o.add_argument(flag)
    return webdriver.Chrome(options=o, service=Service(shutil.which("chromedriver")))


def whole_page(d, path: Path, width: int, most: int = 2600) -> None:
    height = min(most, d.execute_script("return document.documentElement.scrollHeight"))
    d.set_window_size(width, height + 140)          # the window's frame takes some of it
    time.sleep(0.5)
    d.save_screenshot(str(path))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--out", default="docs/images")
    p.add_argument("--steps", type=int, default=1500)
    a = p.parse_args()
    import torch
    from ganforge.report import write_report
    from ganforge.serve import Server
    torch.set_num_threads(1)
    run, out = Path(a.run).resolve(), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_report(run)                                # with this version's report code
    d = chromium(1280, 900)
    try:
        with Server(run.parent) as s:
            d.get(s.url + "/playground")
            time.sleep(1)
            d.find_element("id", "start").click()
            while s.playground.step < a.steps:
                time.sleep(0.2)
            d.find_element("id", "start").click()
            time.sleep(1.5)
            d.save_screenshot(str(out / "serve-playground.png"))
            print(f"{out / 'serve-playground.png'}: step {s.playground.step}, modes {s.playground.frame()['modes']}")
            d.get(f"{s.url}/runs/{run.name}")
            time.sleep(3)
            whole_page(d, out / "serve-run.png", 1280, 1400)
            print(out / "serve-run.png")
        d.set_window_size(1100, 900)
        d.get(run.joinpath("report.html").as_uri())
        time.sleep(1)
        whole_page(d, out / "report.png", 1100, 1500)
        print(out / "report.png")
    finally:
        d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
