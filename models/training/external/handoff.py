"""Handing training to an external engine: where exports and launch files go, and what they are made from.

``juryflow models export-for``, ``launch-ppo`` call these; the formats live in ``openrlhf.py`` and
``verl.py``, the command in ``openrlhf_launch.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labeling.errors import UserError
from models.training.data import snapshot_path
from models.training.external.openrlhf import export_openrlhf
from models.training.external.openrlhf_launch import ClusterShape, write_launch
from models.training.external.verl import export_verl

EXPORTERS = {"openrlhf": export_openrlhf, "verl": export_verl}


def export_dir(data_dir: str | Path, engine: str, snapshot_id: str) -> Path:
    return Path(data_dir) / "exports" / engine / snapshot_id


def export_snapshot_for(engine: str, data_dir: str | Path, snapshot_id: str, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Export ``<data_dir>/snapshots/<snapshot_id>`` for ``engine`` (default ``<data_dir>/exports/<engine>/<id>``)."""
    if engine not in EXPORTERS:
        raise UserError(f"engine {engine!r} is not one juryflow exports for: use one of {sorted(EXPORTERS)}")
    source = snapshot_path(data_dir, snapshot_id)
    if not source.is_dir():
        known = sorted(p.name for p in (Path(data_dir) / "snapshots").glob("*") if p.is_dir())
        raise UserError(f"no snapshot {snapshot_id!r} under {Path(data_dir) / 'snapshots'}: "
                        f"use one of {known[-5:]} or run `juryflow export`")
    return EXPORTERS[engine](source, out_dir or export_dir(data_dir, engine, snapshot_id))


def prepare_openrlhf_ppo(data_dir: str | Path, registry: Any, reward_model_version: str, recipe: dict[str, Any],
                         reward_url: str, shape: ClusterShape, ray_address: str,
                         snapshot_id: str | None = None, launch_dir: str | Path | None = None) -> dict[str, Any]:
    """Export the reward model's snapshot (or ``snapshot_id``) for OpenRLHF and write the PPO launch files."""
    try:
        record = registry.get("reward_model", reward_model_version)
    except KeyError as exc:
        raise UserError(str(exc).strip("\"'")) from None
    snapshot_id = snapshot_id or record.snapshot_id
    if not snapshot_id:
        raise UserError(f"reward model {reward_model_version} records no snapshot: pass --snapshot <snapshot_id> "
                        "for the PPO prompts")
    exported = export_snapshot_for("openrlhf", data_dir, snapshot_id)
    prompts = Path(exported["files"]["prompts"])
    launch_dir = launch_dir or Path(data_dir) / "launch" / f"openrlhf-ppo-{reward_model_version}"
    manifest = write_launch(launch_dir, recipe, prompts, reward_url, shape, ray_address)
    return {**manifest, "snapshot_id": snapshot_id, "n_prompts": exported["n_prompts"],
            "serve_reward": f"juryflow models serve-reward {reward_model_version}"}
