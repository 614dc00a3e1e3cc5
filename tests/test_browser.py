"""The pages in a real browser: Debian's headless Chromium driven by Selenium (scripts/test.sh installs both).

The playground trains in the server while the page draws: the heatmap must
change and the reported mode count rise. A report.html opened from disk must
draw its charts and images with no network. The live run view must follow a
log that grows.
"""
import base64
import io
import json
import os
import shutil
import time

import pytest

from conftest import run_cli
from ganforge.serve import Server

# one worker runs the whole module, so its module fixture runs once (under -n 2 a module's tests are otherwise
# spread over both workers, each running the fixture): scripts/test.sh runs pytest with --dist loadgroup
pytestmark = pytest.mark.xdist_group("browser")

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1280,1000")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing; scripts/test.sh installs them with apt-get")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    o = Options()
    o.binary_location = CHROMIUM
    for flag in FLAGS:
        o.add_argument(flag)
    d = webdriver.Chrome(options=o, service=Service(DRIVER))
    d.set_script_timeout(30)
    yield d
    d.quit()


def wait_for(fn, timeout=60.0, every=0.25):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"waited {timeout} s in vain")
        time.sleep(every)


def canvas_png(d, cid):
    return d.execute_script(f"return document.getElementById('{cid}').toDataURL('image/png')")


def distinct_colours(png_data_url: str) -> int:
    import numpy as np
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(png_data_url.split(",", 1)[1]))).convert("RGB")
    return len(np.unique(np.asarray(im).reshape(-1, 3), axis=0))


def test_the_playground_trains_and_the_page_shows_it(browser, tmp_path):
    d = browser
    with Server(tmp_path) as s:
        s.playground.reset()
        d.get(s.url + "/playground")
        wait_for(lambda: d.execute_script("return window.gf.frame !== null"))
        assert d.find_element("id", "data").get_attribute("value") == "ring"
        heat0 = canvas_png(d, "heat")
        modes0 = int(d.find_element("id", "modes").get_attribute("data-covered"))
        assert distinct_colours(heat0) > 1                # an untrained D is near 0.5 everywhere: near white
        d.find_element("id", "start").click()
        wait_for(lambda: d.find_element("id", "start").text == "Pause", 10)
        wait_for(lambda: canvas_png(d, "heat") != heat0, 30)
        wait_for(lambda: distinct_colours(canvas_png(d, "heat")) > 50, 30)      # D has drawn a landscape
        modes = wait_for(lambda: (m := int(d.find_element("id", "modes").get_attribute("data-covered"))) >= 6 and m,
                         90)
        d.find_element("id", "start").click()                             # pause
        wait_for(lambda: not s.playground.running, 10)
        assert modes > modes0
        assert int(d.find_element("id", "stepno").text) > 0
        assert d.execute_script("return window.gf.rows.length") > 10
        assert distinct_colours(canvas_png(d, "chart_loss")) > 5          # the loss curves were drawn
        shot = tmp_path / "playground.png"
        assert d.save_screenshot(str(shot)) and shot.stat().st_size > 20_000

        # a bad value in the form: the server's sentence appears, the game keeps its settings
        lr = d.find_element("id", "lr_g")
        lr.clear()
        lr.send_keys("5")
        d.execute_script("document.getElementById('lr_g').dispatchEvent(new Event('change'))")
        wait_for(lambda: "lr_g must be between" in d.find_element("id", "error").text, 10)
        assert s.playground.settings.lr_g == 1e-3

        # another objective from the form resets the game with it
        from selenium.webdriver.support.ui import Select
        Select(d.find_element("id", "loss")).select_by_value("wgan-gp")
        wait_for(lambda: s.playground.settings.loss == "wgan-gp" and s.playground.step == 0, 10)
        wait_for(lambda: d.find_element("id", "reg").get_attribute("value") == "gp", 10)
        wait_for(lambda: "score" in d.find_element("id", "heatrange").text, 10)


def test_points_drawn_on_the_canvas_become_the_data(browser, tmp_path):
    d = browser
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select
    with Server(tmp_path) as s:
        d.get(s.url + "/playground")
        wait_for(lambda: d.execute_script("return window.gf.frame !== null"))
        Select(d.find_element("id", "data")).select_by_value("drawn")
        canvas = d.find_element("id", "points")
        for dx, dy in ((-100, -100), (100, 100), (100, -100)):           # three clicks about the centre
            ActionChains(d).move_to_element_with_offset(canvas, dx, dy).click().perform()
        assert d.execute_script("return window.gf.drawn.length") == 3
        d.find_element("id", "usepoints").click()
        wait_for(lambda: s.playground.settings.data == "drawn", 10)
        means = s.playground.density.means
        assert means.shape == (3, 2) and float(means[0, 0]) < 0 < float(means[0, 1])    # up-left is (-x, +y)
        wait_for(lambda: d.find_element("id", "modes").text.endswith("of 3"), 10)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    r = run_cli("train", "toy-ring", "steps=60", "batch_size=64", "log.every=10", "log.samples_every=20",
                "log.progress=off", "eval.every=30", "--out", root, "name=ring")
    assert r.returncode == 0, r.stderr
    return root / "ring"


def test_a_report_renders_its_charts_and_images_offline(browser, toy_run):
    d = browser
    d.get((toy_run / "report.html").as_uri())
    n_svg = d.execute_script("return document.querySelectorAll('svg').length")
    widths = d.execute_script("return [...document.querySelectorAll('svg polyline')].map(p => p.getBBox().width)")
    images = d.execute_script("return [...document.images].map(i => [i.complete, i.naturalWidth])")
    assert n_svg >= 3 and widths and min(widths) > 10
    assert images and all(ok and w > 0 for ok, w in images)
    assert d.execute_script("return performance.getEntriesByType('resource').filter("
                            "e => !e.name.startsWith('data:')).length") == 0          # nothing fetched


def test_the_run_view_follows_a_growing_log(browser, toy_run):
    d = browser
    live = toy_run.parent / "growing"
    shutil.copytree(toy_run, live)
    with Server(toy_run.parent) as s:
        d.get(s.url + "/")
        assert "growing" in d.find_element("tag name", "body").text
        d.get(s.url + "/runs/growing")
        wait_for(lambda: d.find_element("tag name", "body").get_attribute("data-step") == "60", 20)
        assert d.execute_script("return document.querySelectorAll('#charts svg').length") >= 2
        assert d.execute_script("return [...document.querySelectorAll('#latest img')].every("
                                "i => i.complete && i.naturalWidth > 0)")
        with open(live / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 70, "loss_d": 1.3, "loss_g": 0.7, "d_real": 0.6, "d_fake": 0.4}) + "\n")
        wait_for(lambda: d.find_element("tag name", "body").get_attribute("data-step") == "70", 20)
        assert "step 70 of 60" in d.find_element("id", "status").text
