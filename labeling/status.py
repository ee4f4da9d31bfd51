"""What ``juryflow status`` reports, as plain data (the CLI only renders it)."""

from __future__ import annotations

from labeling.calibration import reliability_plot_path
from labeling.drift import latest_drift_alarm
from labeling.guarantee import ACTIVE_KEY, THRESHOLDS_RECORD_KIND, ActiveThresholds
from labeling.labelstudio.agreement import agreement_report, agreement_table
from labeling.settings import Settings
from labeling.store import Store


def calibration_note(record: dict, cfg: Settings) -> str:
    """ECE before/after calibration, on how many audits, and where the reliability diagram is."""

    def fmt(x: object) -> str:
        return "n/a" if x is None else f"{float(x):.3f}"  # type: ignore[arg-type]

    method = (record.get("calibrator") or {}).get("method", cfg.routing.calibration_method)
    note = (
        f"calibration ({method}, {record.get('n_audit', 0)} audit labels, labeler {record.get('labeler_version')}): "
        f"ECE raw {fmt(record.get('ece_raw'))}, calibrated {fmt(record.get('ece_calibrated'))}"
    )
    plot = reliability_plot_path(cfg.data_dir, str(record.get("version")))
    return note + (f"; reliability diagram {plot}" if plot.is_file() else "; no reliability diagram (too few audits)")


def collect_status(cfg: Settings, store: Store | None = None) -> dict:
    store = store or Store.from_settings(cfg)
    states = store.count_by_state()
    quarantine = store.list_quarantine()
    notes: list[str] = []
    if cfg.labeler.model_path is None and store.get_record("labeler", "active") is None:
        notes.append(
            "[bold]cold start[/bold]: no trained AI labeler yet, so every sample goes to human review. "
            "Those labels train the first labeler: `juryflow labeler fit`."
        )
    pending = states.get("human_pending", 0)
    if pending:
        notes.append(f"{pending} samples await human review (Label Studio or `juryflow human import`).")
    record = store.get_record(THRESHOLDS_RECORD_KIND, ACTIVE_KEY)
    active = None if record is None else ActiveThresholds.from_record(record)
    if active is None:
        notes.append(
            f"routing: hand-set thresholds (high={cfg.routing.high}, low={cfg.routing.low}); no guaranteed calibration "
            "yet (run the recalibrate flow once audits have human labels)"
        )
    else:
        notes.append(f"routing guarantee (alpha={active.alpha}, delta={active.delta}): {active.status}")
        notes.append(calibration_note(record or {}, cfg))
    alarm = latest_drift_alarm(store)
    if alarm is not None and alarm.get("fired"):
        notes.append(f"[bold red]drift[/bold red]: {alarm.get('message', alarm)}")
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
