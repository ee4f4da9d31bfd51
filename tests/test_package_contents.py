"""A wheel built from a checkout after a demo run ships only the intended packages and no secret.

The checkout is copied (tracked files plus untracked, not-ignored ones, as `git` sees them), then gets
what a user's runs leave beside the code: `./juryflow.yaml` from `juryflow labelstudio up` and the demo's
`juryflow-demo/` (settings with the Label Studio token, credentials with the admin password and secret
key), written by juryflow's own writers. A wheel is built from the copy with setuptools' PEP 517 backend
(what `pip wheel --no-deps .` runs, without network) and searched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"juryflow", "flows", "tasks", "labeling", "models"}
LS_TOKEN = "SENTINELwheeltoken5e0c2b9d71"
BUILD_WHEEL = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"


def _checkout_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode()
    return [f for f in listed.split("\0") if f and (REPO / f).is_file()]


def _leave_what_a_demo_leaves(tree: Path) -> list[str]:
    """The settings and credentials a user's checkout holds after `labelstudio up` and `juryflow demo`."""
    from labeling.labelstudio.server import LabelStudioServer, record_in_settings_file

    demo = tree / "juryflow-demo"
    record_in_settings_file(tree / "juryflow.yaml", "http://127.0.0.1:8080", LS_TOKEN)
    record_in_settings_file(demo / "juryflow.yaml", "http://127.0.0.1:8081", LS_TOKEN)
    creds = LabelStudioServer(demo).credentials()  # secret key, admin password, token
    (demo / "demo").mkdir(parents=True, exist_ok=True)
    (demo / "demo" / "samples.jsonl").write_text('{"prompt": "p", "response_a": "a", "response_b": "b"}\n')
    return [LS_TOKEN, creds["secret_key"], creds["password"], creds["token"]]


def test_wheel_after_a_demo_holds_only_the_packages_and_no_secret(tmp_path):
    tree = tmp_path / "checkout"
    shipped_sources = _checkout_files()
    for rel in shipped_sources:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tree / rel)
    secrets = _leave_what_a_demo_leaves(tree)

    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-c", BUILD_WHEEL, str(out)], cwd=tree, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = out / built.stdout.strip().splitlines()[-1]

    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        contents = {n: zf.read(n).decode("utf-8", errors="replace") for n in names}
    dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    top_level = {n.split("/")[0] for n in names} - {n.split("/")[0] for n in dist_info}
    assert top_level == PACKAGES, f"the wheel's top-level entries are {sorted(top_level)}, not {sorted(PACKAGES)}"
    unexpected = sorted(set(names) - dist_info - set(shipped_sources))
    assert unexpected == [], f"the wheel holds files that are not source files of the checkout: {unexpected}"
    for data_file in ("labeling/constitutions/default.yaml", "labeling/labelstudio/config.xml",
                      "models/judges/templates/verdict.jinja"):
        assert data_file in names, f"package data {data_file} is missing from the wheel"
    assert not [n for n in names if Path(n).name in ("juryflow.yaml", "credentials.json")]
    leaks = sorted({n for n, text in contents.items() for s in secrets if s in text})
    assert leaks == [], f"secrets from the demo's settings are inside the wheel: {leaks}"
