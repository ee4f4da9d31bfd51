"""An annotator's browser shows HTML inside a sample as inert text (config.xml uses <Text>, not <HyperText>).

Needs headless Chromium and its driver (Debian: `apt-get install -y chromium chromium-driver`) and
selenium. The screenshot is kept in test-artifacts/labelstudio-inert-html.png.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid

import pytest

from labeling.schemas import Sample
from tasks import resources
from tasks.review import ensure_project, push_pending
from tests.labeling.labelstudio.conftest import REPO, seed_human_pending

pytestmark = [pytest.mark.integration, pytest.mark.requires_labelstudio]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
requires_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not found: apt-get install -y chromium chromium-driver",
)
SCRIPT = "<script>document.title='pwned-script';window.__pwned='script'</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img';window.__pwned='img'\">"


@requires_chromium
def test_html_in_a_response_is_shown_as_text_and_never_runs(ls_env, ls_server, ls_admin):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    sample = Sample(sample_id="xss", prompt="Show me some HTML", response_a=f"Here: {SCRIPT}", response_b=f"And {IMG}")
    seed_human_pending([sample])
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    task_id = resources.store().get_human_tasks()["xss"].task_id
    email = f"browser-{uuid.uuid4().hex[:6]}@juryflow.local"
    password = ls_server.add_annotator(email)

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="juryflow-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=opts, service=service)
    shot = REPO / "test-artifacts" / "labelstudio-inert-html.png"
    shot.parent.mkdir(exist_ok=True)
    try:
        driver.get(f"{ls_server.url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys(email)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
        WebDriverWait(driver, 30).until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{ls_server.url}/projects/{project_id}/data?task={task_id}")
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Here: <script>"))
        time.sleep(2)  # give any injected handler (the img's onerror) time to fire, were it live
        body = driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(shot))
        assert SCRIPT in body and IMG in body  # shown literally, character for character
        assert "pwned" not in driver.title
        assert driver.execute_script("return window.__pwned === undefined")
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    finally:
        if not shot.is_file():  # keep what the browser showed when it failed
            driver.save_screenshot(str(shot.with_name("labelstudio-inert-html-failure.png")))
            print("browser was at", driver.current_url)
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file() and shot.stat().st_size > 10_000
