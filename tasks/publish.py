"""Export and reporting tasks at the end of a labeling run."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labeling.cascade import JudgeStageCounts, LabelerStageCounts
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
    return export_snapshot(st, cfg.data_dir / "snapshots", thresholds)


@task(name="publish-run-summary")
def publish_run_summary(
    ingested: dict | None, labeled: list[LabelerStageCounts], judged: list[JudgeStageCounts], snapshot: Snapshot
) -> dict:
    """One table artifact per run: counts per route and the mean AI confidence."""
    reasons: Counter[str] = Counter()
    for part in labeled:
        reasons.update(part.reasons)
    judge_outcomes: Counter[str] = Counter()
    for part in judged:
        judge_outcomes.update(part.reasons)
    n_labeled = sum(p.labeled for p in labeled)
    summary = {
        "ingested": ingested or {},
        "ai_labeled": n_labeled,
        "to_judge": sum(p.to_judge for p in labeled),
        "to_human": sum(p.to_human for p in labeled),
        "judge_accepted": sum(p.accepted for p in judged),
        "judge_escalated": sum(p.escalated for p in judged),
        "mean_confidence": round(sum(p.confidence_sum for p in labeled) / n_labeled, 4) if n_labeled else None,
        "route_reasons": dict(reasons),
        "judge_outcomes": dict(judge_outcomes),
        "human_pending": resources.store().count_by_state().get("human_pending", 0),
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_path": str(snapshot.path),
        "snapshot_rows": snapshot.n_rows,
    }
    rows = [{"metric": k, "value": str(v)} for k, v in summary.items() if not isinstance(v, dict)]
    rows += [{"metric": f"route:{k}", "value": str(v)} for k, v in sorted(reasons.items())]
    rows += [{"metric": f"judge:{k}", "value": str(v)} for k, v in sorted(judge_outcomes.items())]
    create_table_artifact(key="label-batch-summary", table=rows, description="juryflow label_batch: routes and counts")
    return summary
