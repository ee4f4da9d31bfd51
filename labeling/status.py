"""What ``juryflow status`` reports, as plain data (the CLI only renders it)."""

from __future__ import annotations

from labeling.calibration import reliability_plot_path
from labeling.labelstudio.agreement import agreement_report, agreement_table
from labeling.records import Thresholds, list_drift_alarms, read_active_labeler, read_active_thresholds
from labeling.settings import Settings
from labeling.store import Store


def calibration_note(active: Thresholds, cfg: Settings) -> str:
    """ECE before/after calibration, on how many audits, and where the reliability diagram is."""

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    method = active.calibrator.method if active.has_calibrator else cfg.routing.calibration_method
    note = (
        f"calibration ({method}, {active.n_audit} audit labels, labeler {active.labeler_version}): "
        f"ECE raw {fmt(active.ece_raw)}, calibrated {fmt(active.ece_calibrated)}"
    )
    plot = reliability_plot_path(cfg.data_dir, active.version)
    return note + (f"; reliability diagram {plot}" if plot.is_file() else "; no reliability diagram (too few audits)")


def collect_status(cfg: Settings, store: Store | None = None) -> dict:
    store = store or Store.from_settings(cfg)
    states = store.count_by_state()
    quarantine = store.list_quarantine()
    notes: list[str] = []
    if cfg.labeler.model_path is None and read_active_labeler(store) is None:
        notes.append(
            "[bold]cold start[/bold]: no trained AI labeler yet, so every sample goes to human review. "
            "Those labels train the first labeler: `juryflow labeler fit`."
        )
    pending = states.get("human_pending", 0)
    if pending:
        notes.append(f"{pending} samples await human review (Label Studio or `juryflow human import`).")
    active = read_active_thresholds(store)
    if active is None:
        notes.append(
            f"routing: hand-set thresholds (high={cfg.routing.high}, low={cfg.routing.low}); no guaranteed calibration "
            "yet (run the recalibrate flow once audits have human labels)"
        )
    else:
        notes.append(f"routing guarantee (alpha={active.alpha}, delta={active.delta}): {active.status}")
        notes.append(calibration_note(active, cfg))
    alarms = list_drift_alarms(store)
    if alarms and alarms[-1].fired:
        notes.append(f"[bold red]drift[/bold red]: {alarms[-1].message}")
    snap = store.last_snapshot()
    if snap:
        notes.append(f"last snapshot {snap['snapshot_id']}: {snap['n_rows']} rows at {snap['path']}")
    notes.append(f"labels merged since that snapshot: {store.labels_since_last_snapshot()}")
    agreement = agreement_report(store)
    return {
        "states": dict(sorted(states.items())),
        "notes": notes,
        "agreement": agreement_table(agreement) if agreement["n_tasks"] else [],
        "quarantine_total": len(quarantine),
        "quarantine": [q.message for q in quarantine[-10:]],
    }
