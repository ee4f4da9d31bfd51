"""`juryflow labelstudio up|status|down` on a real server (data dir copied from the migrated template)."""

from __future__ import annotations

import shutil
import stat

import pytest
import yaml
from typer.testing import CliRunner

from juryflow.cli_labelstudio import app
from labeling.labelstudio.client import LabelStudioClient
from labeling.labelstudio.server import LabelStudioServer
from labeling.settings import load_settings
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.requires_labelstudio]


def test_up_status_down_keeps_settings_and_secrets_private(juryflow_env, ls_template, monkeypatch):
    config = juryflow_env / "juryflow.yaml"
    config.write_text("campaign: demo\nrouting:\n  high: 0.85\n")
    data_dir = juryflow_env / "data"
    shutil.copytree(ls_template / "labelstudio", data_dir / "labelstudio")
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__PORT", str(free_port()))
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["up"])
        assert up.exit_code == 0, up.output
        cfg = load_settings()
        assert cfg.campaign == "demo" and cfg.routing.high == 0.85  # other keys kept
        server = LabelStudioServer(data_dir, port=cfg.labelstudio.port)
        assert cfg.labelstudio.url == server.url and cfg.labelstudio.api_key.get_secret_value() == server.token
        assert server.token not in up.output  # the login is shown, the API token is not
        for private in (config, server.credentials_path, server.log_path):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        LabelStudioClient.from_settings(cfg).ensure_project("cli check", 1)  # the recorded token works
        assert runner.invoke(app, ["status"]).exit_code == 0
        assert "127.0.0.1" in yaml.safe_load(config.read_text())["labelstudio"]["url"]
    finally:
        down = runner.invoke(app, ["down"])
    assert "stopped" in down.output
    assert runner.invoke(app, ["status"]).exit_code == 1


@pytest.mark.integration
@pytest.mark.requires_labelstudio
def test_a_password_that_starts_with_a_dash_is_set(ls_server) -> None:
    # token_urlsafe can start with "-"; as a separate argv word argparse took it for an option (exit 2).
    assert ls_server.add_annotator("dash@juryflow.local", password="-starts-with-a-dash") == "-starts-with-a-dash"
