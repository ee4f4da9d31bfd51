"""Every plot juryflow publishes shows as an image in the Prefect UI of a plain `prefect server start`.

The session's real server (tests/conftest.py `prefect_server`: its own PREFECT_HOME, a free port on
127.0.0.1) receives a plot from a flow that calls tasks.publish.publish_png, the helper behind the
cost-quality curve and the reliability diagram; headless Chromium opens the artifact page in both
Prefect UIs (V2, the default, and V1 for browsers that saved that preference) and the <img> must have
loaded. Screenshots: test-artifacts/prefect-ui-plot-v2.png and -v1.png.
Needs headless Chromium and its driver (Debian: `apt-get install -y chromium chromium-driver`) and selenium.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.browser import headless_chromium, requires_chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]

# A flow run the way a user's run reaches the server: a separate process with PREFECT_API_URL set.
PUBLISHING_FLOW = """
import json, sys
from prefect import flow
from labeling.calibration import plot_reliability
from tasks.publish import publish_png

@flow(name="publish-a-plot")
def publish_a_plot(out: str) -> str:
    conf = [0.55, 0.6, 0.7, 0.8, 0.9, 0.95] * 5
    correct = [True, False, True, True, True, True] * 5
    png = plot_reliability({"raw": (conf, correct)}, out)
    return str(publish_png(png, key="ui-plot-check", description="reliability diagram, UI check"))

print(json.dumps({"artifact_id": publish_a_plot(sys.argv[1])}))
"""


def test_no_plot_is_published_as_a_file_url_image():
    """Image artifacts only hold a URL, and file:// is a broken image in the UI: plots go through publish_png."""
    offenders = []
    for package in ("flows", "tasks", "labeling", "models", "juryflow"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                name = getattr(node, "attr", None) or getattr(node, "id", None)
                if name == "create_image_artifact":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == [], f"use tasks.publish.publish_png instead of create_image_artifact at {offenders}"


@requires_chromium
def test_published_plot_shows_in_the_prefect_ui(prefect_server, tmp_path):
    url = prefect_server["url"]
    png = tmp_path / "reliability.png"
    env = {**prefect_server["env"], "PREFECT_API_URL": prefect_server["api_url"], "PYTHONPATH": str(REPO)}
    ui_settings = httpx.get(f"{url}/ui-settings", timeout=10).json()
    assert ui_settings["api_url"] == f"{url}/api", f"the UI would call {ui_settings['api_url']}"
    run = subprocess.run([sys.executable, "-c", PUBLISHING_FLOW, str(png)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    artifact_id = json.loads(run.stdout.strip().splitlines()[-1])["artifact_id"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the PNG stays on disk too"
    artifact = httpx.get(f"{url}/api/artifacts/{artifact_id}", timeout=10).json()
    assert artifact["type"] == "markdown" and "data:image/png;base64," in artifact["data"]

    shots = REPO / "test-artifacts"
    shots.mkdir(exist_ok=True)
    loaded = ("const i = document.querySelector('img[src^=\"data:image/png\"]');"
              "return i !== null && i.complete ? i.naturalWidth : 0;")
    with headless_chromium() as driver:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        # V2 is the default UI in Prefect 3.9; V1 still serves browsers that saved it as their preference.
        for ui, page in (("v2", f"{url}/v2/artifacts/artifact/{artifact_id}"),
                         ("v1", f"{url}/artifacts/artifact/{artifact_id}")):
            shot = shots / f"prefect-ui-plot-{ui}.png"
            shot.unlink(missing_ok=True)
            driver.get(page)
            try:
                width = WebDriverWait(driver, 90).until(lambda d: d.execute_script(loaded))
            finally:
                driver.save_screenshot(str(shot))
            assert width > 0, f"the plot did not load in the {ui} UI at {page}; see {shot}"
            img = driver.find_element(By.CSS_SELECTOR, 'img[src^="data:image/png"]')
            assert img.is_displayed(), f"the plot is on the {ui} page but hidden; see {shot}"
            assert shot.stat().st_size > 10_000
