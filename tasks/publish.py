"""Export and reporting tasks at the end of a labeling run."""

from __future__ import annotations

import base64
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labeling.cascade import JudgeStageCounts, LabelerStageCounts, run_summary
from labeling.export import Snapshot, export_snapshot
from labeling.records import read_active_thresholds
from labeling.routing import policy_in_force
from tasks import resources


def publish_png(path: str | Path, key: str, description: str | None = None) -> UUID:
    """Show a PNG in the Prefect UI: a markdown artifact that embeds it as a data: URI.

    An image artifact only stores a URL, and a file:// URL is a broken image on the UI's http page;
    the UI's markdown renderer allows data:image/ sources (Prefect 3.9 ui-v2 lazy-markdown adds
    `data` to rehype-sanitize's src protocols), so the plot travels inside the artifact and needs
    no file server. The PNG stays on disk at `path`, which the artifact names.
    """
    path = Path(path).resolve()
    if path.suffix.lower() != ".png" or not path.is_file():
        raise ValueError(f"publish_png: {path} is not a PNG file; pass the path the plot was saved to")
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    markdown = f"![{key}](data:image/png;base64,{encoded})\n\nPNG on disk: `{path}`"
    return create_markdown_artifact(markdown=markdown, key=key, description=description or str(path))


@task(name="export-snapshot", retries=2, retry_delay_seconds=[2, 10])
def export_dataset() -> Snapshot:
    cfg = resources.settings()
    st = resources.store(cfg)
    policy = policy_in_force(cfg.routing, read_active_thresholds(st))
    thresholds = {
        "high": policy.high,
        "low": policy.low,
        "audit_rate": policy.audit_rate,
        "judge_threshold": policy.judge_threshold,
    }
    if policy.audit_design.focused:  # only then: a uniform design's snapshots keep their ids
        thresholds |= {"audit_focus_above": policy.audit_focus_above, "audit_focus_rate": policy.audit_focus_rate}
    return export_snapshot(st, cfg.data_dir / "snapshots", thresholds)


@task(name="publish-run-summary")
def publish_run_summary(
    ingested: dict | None, labeled: list[LabelerStageCounts], judged: list[JudgeStageCounts], snapshot: Snapshot
) -> dict:
    """One table artifact per run: counts per route and the mean AI confidence."""
    summary = run_summary(ingested, labeled, judged, snapshot, resources.store().count_by_state().get("human_pending", 0))
    rows = [{"metric": k, "value": str(v)} for k, v in summary.items() if not isinstance(v, dict)]
    rows += [{"metric": f"route:{k}", "value": str(v)} for k, v in sorted(summary["route_reasons"].items())]
    rows += [{"metric": f"judge:{k}", "value": str(v)} for k, v in sorted(summary["judge_outcomes"].items())]
    create_table_artifact(key="label-batch-summary", table=rows, description="juryflow label_batch: routes and counts")
    return summary
