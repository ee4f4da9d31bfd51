"""What an annotator's browser shows, logged in to the real Label Studio server (see conftest.py).

- HTML inside a sample is inert text (config.xml uses <Text>, not <HyperText>);
- annotators judge blind (issue 11): a fresh task opens with nothing ticked, and neither an escalated
  task nor an audit task shows an AI answer, confidence, critique or route reason;
- with labelstudio.show_ai_reference on, a review task shows them as text (still nothing ticked) and an
  audit task still shows none.

Needs headless Chromium and its driver (Debian: `apt-get install -y chromium chromium-driver`) and
selenium. Screenshots are kept in test-artifacts/labelstudio-*.png.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labeling.schemas import Sample
from tasks import resources
from tasks.review import ensure_project, push_pending
from tests.browser import headless_chromium, requires_chromium
from tests.labeling.labelstudio.conftest import REPO, seed_human_pending

pytestmark = [pytest.mark.integration, pytest.mark.requires_labelstudio]

SCRIPT = "<script>document.title='pwned-script';window.__pwned='script'</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img';window.__pwned='img'\">"
# What seed_human_pending stores as the machines' view of a sample: none of it may reach the page.
MACHINE_TEXT = ("Principle 1", "harmless", "labeler:emb", "judge:tiny", "emb:v1", "tiny:j1",
                "judge_disagrees", "high_confidence", "audit", "critique", "0.9")
QUESTION = "Which response is better?"


@contextmanager
def annotator_browser(ls_server, shot: Path) -> Iterator:
    """Headless Chromium logged in as a fresh annotator; keeps a failure screenshot beside `shot`."""
    email = f"browser-{uuid.uuid4().hex[:6]}@juryflow.local"
    password = ls_server.add_annotator(email)
    shot.parent.mkdir(exist_ok=True)
    with headless_chromium() as driver:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            driver.get(f"{ls_server.url}/user/login/")
            driver.find_element(By.NAME, "email").send_keys(email)
            driver.find_element(By.NAME, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
            WebDriverWait(driver, 30).until(lambda d: "/user/login" not in d.current_url)
            yield driver
        finally:
            if not shot.is_file():  # keep what the browser showed when it failed
                driver.save_screenshot(str(shot.with_name(f"{shot.stem}-failure.png")))
                print("browser was at", driver.current_url)


def open_task(driver, url: str, project_id: int, task_id: int, expect: str) -> str:
    """Open one task in the labeling view and wait until `expect` and the question are on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/projects/{project_id}/data?task={task_id}")
    for text in (expect, QUESTION):
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))
    return driver.find_element(By.TAG_NAME, "body").text


@requires_chromium
def test_html_in_a_response_is_shown_as_text_and_never_runs(ls_env, ls_server, ls_admin):
    sample = Sample(sample_id="xss", prompt="Show me some HTML", response_a=f"Here: {SCRIPT}", response_b=f"And {IMG}")
    seed_human_pending([sample])
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    task_id = resources.store().get_human_tasks()["xss"].task_id
    shot = REPO / "test-artifacts" / "labelstudio-inert-html.png"
    with annotator_browser(ls_server, shot) as driver:
        open_task(driver, ls_server.url, project_id, task_id, "Here: <script>")
        time.sleep(2)  # give any injected handler (the img's onerror) time to fire, were it live
        body = driver.find_element("tag name", "body").text
        driver.save_screenshot(str(shot))
        assert SCRIPT in body and IMG in body  # shown literally, character for character
        assert "pwned" not in driver.title
        assert driver.execute_script("return window.__pwned === undefined")
        assert driver.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    assert shot.is_file() and shot.stat().st_size > 10_000


# The labeling view's own text (not the data manager's task list beside it): the smallest element holding
# the question and both responses.
LABELING_VIEW_TEXT_JS = """
const all = [...document.querySelectorAll('div')].filter(d => {
  const t = d.innerText || '';
  return t.includes('Which response is better?') && t.includes('Response A') && t.includes('Response B');
});
all.sort((a, b) => a.innerText.length - b.innerText.length);
return all.length ? all[0].innerText : null;
"""

# The preference control's three options in the labeling panel, and which of them are ticked.
CHOICE_STATE_JS = """
const option = i => {  // the option's text without its hotkey hint: "A[1]" -> "A"
  const m = ((i.closest('label') || i.parentElement.parentElement).innerText || '').replace(/\\s+/g, '')
    .match(/^(A|B|tie)\\[?\\d*\\]?$/);
  return m ? m[1] : null;
};
const inputs = [...document.querySelectorAll('input[type=checkbox], input[type=radio]')].filter(option);
return {n: inputs.length, checked: inputs.filter(i => i.checked).map(option)};
"""


@requires_chromium
def test_annotators_judge_blind_escalated_and_audit_tasks(ls_env, ls_server, ls_admin):
    """The judge preferred B on both; one was escalated with a critique, one drawn for audit."""
    escalated = Sample(sample_id="blind-1", prompt="Which is kinder?", response_a="first answer A",
                       response_b="first answer B")
    audit = Sample(sample_id="blind-2", prompt="Which is clearer?", response_a="second answer A",
                   response_b="second answer B")
    seed_human_pending([escalated], judge_prefers="B")
    seed_human_pending([audit], judge_prefers="B", audit=True)
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    tasks = resources.store().get_human_tasks()
    pages = {}
    with annotator_browser(ls_server, REPO / "test-artifacts" / "labelstudio-blind-audit.png") as driver:
        for sample, name in ((escalated, "escalated"), (audit, "audit")):
            body = open_task(driver, ls_server.url, project_id, tasks[sample.sample_id].task_id, sample.response_a)
            time.sleep(2)  # a prediction would be applied right after the task renders
            choices = driver.execute_script(CHOICE_STATE_JS)
            driver.save_screenshot(str(REPO / "test-artifacts" / f"labelstudio-blind-{name}.png"))
            pages[name] = (driver.find_element("tag name", "body").text, choices)
            assert sample.response_b in body
        # The check above can see a tick: tick B the way an annotator does and read it back.
        driver.find_element("xpath", "//label[.//input][starts-with(normalize-space(.), 'B')]").click()
        assert driver.execute_script(CHOICE_STATE_JS)["checked"] == ["B"]
    for name, (body, choices) in pages.items():
        assert choices == {"n": 3, "checked": []}, (name, choices)  # A, B, tie on the page; none ticked
        leaked = [text for text in MACHINE_TEXT if text in body]
        assert not leaked, f"{name} task shows machine text {leaked}"


@requires_chromium
def test_review_tasks_show_the_ai_reference_only_when_set_and_audit_tasks_never(ls_env, ls_server, ls_admin,
                                                                                  monkeypatch):
    """labelstudio.show_ai_reference: a review task shows the machines' answers as text, nothing ticked;
    an audit task shows none of them; a task pushed before the switch still opens; switching back hides it."""
    from labeling.labelstudio.client import label_config

    before = Sample(sample_id="ref-0", prompt="Which is shorter?", response_a="zeroth answer A",
                    response_b="zeroth answer B")
    escalated = Sample(sample_id="ref-1", prompt="Which is kinder?", response_a="first answer A",
                       response_b="first answer B")
    audit = Sample(sample_id="ref-2", prompt="Which is clearer?", response_a="second answer A",
                   response_b="second answer B")
    seed_human_pending([before], judge_prefers="B")
    project_id = ensure_project.fn()
    push_pending.fn(project_id)  # the setting still off: a blind task
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__SHOW_AI_REFERENCE", "true")
    seed_human_pending([escalated], judge_prefers="B")
    seed_human_pending([audit], judge_prefers="B", audit=True)
    assert ensure_project.fn() == project_id
    assert ls_admin.sdk.projects.get(project_id).label_config.strip() == label_config(show_ai_reference=True).strip()
    push_pending.fn(project_id)
    tasks = resources.store().get_human_tasks()
    pages = {}
    with annotator_browser(ls_server, REPO / "test-artifacts" / "labelstudio-reference-audit.png") as driver:
        for sample, name in ((escalated, "escalated"), (audit, "audit"), (before, "before")):
            open_task(driver, ls_server.url, project_id, tasks[sample.sample_id].task_id, sample.response_a)
            time.sleep(2)  # a prediction would be applied right after the task renders
            view = driver.execute_script(LABELING_VIEW_TEXT_JS)
            assert view and sample.response_b in view, (name, view)
            pages[name] = (view, driver.execute_script(CHOICE_STATE_JS))
            driver.save_screenshot(str(REPO / "test-artifacts" / f"labelstudio-reference-{name}.png"))
    for name, (_, choices) in pages.items():
        assert choices == {"n": 3, "checked": []}, (name, choices)
    review = pages["escalated"][0]
    for line in ("AI reference, not a label and not pre-selected", "Labeler (emb v1): prefers A, P(A better) 0.90",
                 "Judge (tiny j1): prefers B", "Judge's critique: Principle 1: <b>harmless</b>",
                 "Sent for review because: high_confidence, judge_disagrees"):
        assert line in review, (line, review)
    # The data manager's list beside it has an ai_reference column: empty for an audit, so it tells an
    # annotator which tasks are audits, never what the machines said about one (README's trade-off).
    for name in ("audit", "before"):
        leaked = [text for text in (*MACHINE_TEXT, "AI reference") if text in pages[name][0]]
        assert not leaked, f"{name} task shows machine text {leaked}"
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__SHOW_AI_REFERENCE", "false")
    ensure_project.fn()
    assert ls_admin.sdk.projects.get(project_id).label_config.strip() == label_config().strip()
