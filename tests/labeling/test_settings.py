from pathlib import Path

import pytest

from labeling.settings import SettingsError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "juryflow.example.yaml"


def test_example_config_loads(clean_env):
    clean_env.setenv("JURYFLOW_CONFIG", str(EXAMPLE))
    cfg = load_settings()
    assert cfg.routing.high == 0.8 and cfg.judge.backend == "transformers"


def test_env_overrides_yaml(clean_env, tmp_path):
    path = tmp_path / "j.yaml"
    path.write_text("routing:\n  high: 0.9\n  low: 0.7\n")
    clean_env.setenv("JURYFLOW_CONFIG", str(path))
    clean_env.setenv("JURYFLOW__ROUTING__HIGH", "0.95")
    cfg = load_settings()
    assert (cfg.routing.high, cfg.routing.low) == (0.95, 0.7)


def test_errors_say_how_to_fix(clean_env):
    clean_env.setenv("JURYFLOW__ROUTING__LOW", "0.9")
    clean_env.setenv("JURYFLOW__ROUTING__HIGH", "0.7")
    with pytest.raises(SettingsError, match="set low <= high"):
        load_settings()
    clean_env.delenv("JURYFLOW__ROUTING__LOW")
    clean_env.setenv("JURYFLOW__ROUTING__HIGH", "1.5")
    with pytest.raises(SettingsError, match=r"routing\.high.*JURYFLOW__ROUTING__HIGH"):
        load_settings()


def test_openai_backend_needs_url_and_hides_key(clean_env):
    clean_env.setenv("JURYFLOW__JUDGE__BACKEND", "openai")
    with pytest.raises(SettingsError, match="JURYFLOW__JUDGE__BASE_URL"):
        load_settings()
    clean_env.setenv("JURYFLOW__JUDGE__BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("JURYFLOW__JUDGE__API_KEY", "sk-very-secret")
    cfg = load_settings()
    assert "sk-very-secret" not in repr(cfg) and "sk-very-secret" not in str(cfg.model_dump())
    assert cfg.judge.api_key.get_secret_value() == "sk-very-secret"


def test_unknown_keys_are_rejected(clean_env, tmp_path):
    path = tmp_path / "j.yaml"
    path.write_text("routing:\n  hgh: 0.9\n")
    clean_env.setenv("JURYFLOW_CONFIG", str(path))
    with pytest.raises(SettingsError, match="hgh"):
        load_settings()
