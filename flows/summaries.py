"""Each flow's closing line: the few numbers an operator reads first, on one line.

The flow logs it through the run logger and ``python -m flows.<name>`` prints it too.
"""

from __future__ import annotations

from typing import Any


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)


def label_batch_line(summary: dict[str, Any]) -> str:
    ingested = summary.get("ingested") or {}
    return "label-batch finished: " + _pairs({
        "ingested": ingested.get("inserted"), "quarantined": ingested.get("quarantined"),
        "ai_labeled": summary.get("ai_labeled"), "judge_accepted": summary.get("judge_accepted"),
        "to_human": summary.get("to_human"), "judge_escalated": summary.get("judge_escalated"),
        "human_pending": summary.get("human_pending"),
        "snapshot": f"{summary.get('snapshot_id')} ({summary.get('snapshot_rows')} rows)",
    })  # fmt: skip


def harvest_line(result: dict[str, Any]) -> str:
    pushed, harvested = result.get("pushed") or {}, result.get("harvested") or {}
    return f"harvest-reviews finished (project {result.get('project_id')}): " + _pairs({
        "pushed": pushed.get("created"), "already_there": pushed.get("already_there"),
        "tasks_read": harvested.get("tasks_read"), "human_labels": harvested.get("human_labels"),
        "final_labels": harvested.get("final_labels"), "reopened_for_tie": harvested.get("reopened_for_tie"),
        "ties": harvested.get("ties"), "waiting": harvested.get("waiting"), "quarantined": harvested.get("quarantined"),
    })  # fmt: skip


def recalibrate_line(result: dict[str, Any]) -> str:
    drift, fit = result.get("drift") or {}, result.get("thresholds") or {}
    stages = {f"{s}_threshold": (fit.get(s) or {}).get("threshold") for s in ("labeler", "judge")}
    drift_text = "drift alarm: " + str(drift.get("message")) if drift.get("fired") else "no drift"
    return f"recalibrate finished: {drift_text}; " + _pairs({
        "thresholds": fit.get("version"), "status": fit.get("status"), "audit_labels": fit.get("n_audit"), **stages,
        "ece_calibrated": fit.get("ece_calibrated"),
    })  # fmt: skip


def evaluate_routing_line(report: dict[str, Any]) -> str:
    scalars = {k: v for k, v in report.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80}
    return "evaluate-routing finished: " + _pairs(dict(list(scalars.items())[:10]))


def training_line(name: str, result: dict[str, Any]) -> str:
    scalars = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) and len(str(v)) < 100}
    heldout = {f"heldout.{k}": round(v, 4) for k, v in (result.get("heldout") or {}).items() if isinstance(v, float)}
    return f"{name} finished: " + _pairs({**scalars, **heldout})
