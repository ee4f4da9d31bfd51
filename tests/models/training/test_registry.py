import pytest

from models.training.registry import Registry


def test_register_list_and_status(tmp_path):
    reg = Registry(tmp_path / "registry")
    version = reg.new_version("reward_model", "snap1", {"learning_rate": 0.1})
    with pytest.raises(FileNotFoundError, match="save the model there"):
        reg.register("reward_model", version, snapshot_id="snap1", recipe={}, metrics={}, parent_model=None)
    reg.model_dir("reward_model", version).mkdir(parents=True)
    record = reg.register("reward_model", version, snapshot_id="snap1", recipe={"learning_rate": 0.1},
                          metrics={"heldout": {"accuracy": 0.9}}, parent_model="base")
    assert record.status == "candidate" and record.git_commit and record.created_at
    reg.set_status("reward_model", version, "rejected", "worse", {"gate": {"baseline": 0.95}})
    got = reg.get("reward_model", version)
    assert got.status == "rejected" and got.metrics["heldout"]["accuracy"] == 0.9 and got.metrics["gate"]["baseline"] == 0.95
    assert [r.version for r in reg.list()] == [version]
    with pytest.raises(KeyError, match="no policy version 'x'"):
        reg.get("policy", "x")


def test_cli_lists_models_in_a_table(juryflow_env):
    from typer.testing import CliRunner

    from juryflow.cli_models import app
    from labeling.settings import load_settings

    runner = CliRunner()
    empty = runner.invoke(app, ["list"])
    assert empty.exit_code == 0 and "no models yet" in empty.output
    reg = Registry.from_settings(load_settings())
    version = reg.new_version("reward_model", "snap1", {})
    reg.model_dir("reward_model", version).mkdir(parents=True)
    reg.register("reward_model", version, snapshot_id="snap1", recipe={}, metrics={"heldout": {"accuracy": 0.93}},
                 parent_model="base")
    reg.set_status("reward_model", version, "promoted", "beat the labeler")
    out = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and version in out.output and "promoted" in out.output and "accuracy=0.930" in out.output
    assert runner.invoke(app, ["list", "--kind", "bogus"]).exit_code != 0
