"""Checks of a user's input that run before any flow starts, so a mistake costs one line, not a flow run.

Each raises ``UserError`` naming the thing, the value and the fix.
"""

from __future__ import annotations

from pathlib import Path

from labeling.errors import UserError
from labeling.ingest.into_store import check_input_path  # noqa: F401 - re-exported for the CLI and flows
from labeling.settings import Settings, config_path


def check_labelstudio_configured(cfg: Settings) -> None:
    if cfg.labelstudio.url and cfg.labelstudio.api_key is not None:
        return
    missing = " and ".join(n for n, v in (("labelstudio.url", cfg.labelstudio.url), ("labelstudio.api_key", cfg.labelstudio.api_key)) if not v)
    raise UserError(
        f"{missing} unset in {config_path()}: run `juryflow labelstudio up` (it writes both), "
        "or set JURYFLOW__LABELSTUDIO__URL and JURYFLOW__LABELSTUDIO__API_KEY"
    )


def check_recipe(recipe: str | Path, stage: str) -> None:
    """Read the recipe and check it can start here (a model named, no GPU-only setting on a CPU)."""
    from models.training.config import check_runnable_here, read_recipe, resolve_recipe

    path = resolve_recipe(recipe)
    flat = read_recipe(path)
    flat.pop("__stage__", None)
    check_runnable_here(path, flat, stage)
