"""Offline evaluation: replay a labeled file through routing, with the file's reference labels
standing in for the humans.

1. Out-of-fold AI labels: a labeler is fitted on K-1 folds and labels the Kth, so every sample
   gets a p_a from a model that never saw it (the fitting itself lives in models.labelers.folds).
2. Cost-quality curve: share of samples sent to humans against agreement of the final dataset
   (human-routed samples take the reference label) for random routing, fixed uncalibrated
   thresholds and the calibrated guaranteed thresholds (one point per alpha).
3. Guarantee check: over many random calibration/test splits, calibrate and pick the threshold
   on the calibration part (playing the audit set), route the test part through
   ``labeling.routing``, and count how often the realised error among auto-accepted test
   samples exceeds alpha; the guarantee says at most about delta of the splits.

The replay has no judge: auto-accepted means "sent to the judge without a human", as if the
judge agreed, so it measures the labeler stage of the cascade.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeling.calibration import confidence_of, expected_calibration_error, fit_calibrator, plot_reliability
from labeling.guarantee import guaranteed_threshold
from labeling.threshold_procedures import DEFAULT_PROCEDURE
from labeling.routing import RoutingPolicy, route_after_labeler
from labeling.schemas import AILabel, Sample, unit_hash

COVERAGE_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ALPHA_SWEEP = (0.10, 0.14, 0.18, 0.22, 0.26, 0.28, 0.30, 0.34, 0.38, 0.42)


def fold_of(sample_id: str, folds: int) -> int:
    """A stable fold assignment: the same sample lands in the same fold on every run."""
    return int(unit_hash("fold", sample_id) * folds)


def out_of_fold_p_a(
    samples: Sequence[Sample],
    folds: int,
    work_dir: Path,
    fit_fold: Callable[[Sequence[Sample], Path], Any],
) -> np.ndarray:
    """p_a for every sample from a labeler fitted on the other folds (never on the sample itself).

    ``fit_fold(train_samples, fold_dir)`` returns the fitted production labeler (an AILabeler,
    used as a context manager); models.labelers.folds has one per labeler kind.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2 to keep each sample out of its own head's training, got {folds}")
    missing = [s.sample_id for s in samples if s.reference_label is None]
    if missing:
        raise ValueError(f"samples {missing[:5]} have no reference label: evaluate needs a labeled file")
    if len(samples) < 2 * folds:
        raise ValueError(f"{len(samples)} labeled samples: need at least {2 * folds} for {folds} folds")
    assign = np.array([fold_of(s.sample_id, folds) for s in samples])
    p_a = np.full(len(samples), np.nan)
    for k in range(folds):
        test_idx = np.nonzero(assign == k)[0]
        train_idx = np.nonzero(assign != k)[0]
        if test_idx.size == 0:
            continue
        train = [samples[i] for i in train_idx]
        with fit_fold(train, work_dir / f"fold-{k}") as fold_labeler:  # the production labeler, on unseen samples
            labels = fold_labeler.label([samples[i] for i in test_idx])
        p_a[test_idx] = [lab.p_a for lab in labels]
    return p_a


def write_out_of_fold(path: Path, samples: Sequence[Sample], p_a: np.ndarray, labeler: str) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for s, p in zip(samples, p_a, strict=True):
            row = {"sample_id": s.sample_id, "p_a": float(p), "reference": s.reference_label, "labeler": labeler}
            fh.write(json.dumps(row) + "\n")
    return path


def read_out_of_fold(path: Path, samples: Sequence[Sample]) -> tuple[np.ndarray, str]:
    """(p_a in ``samples`` order, labeler kind) from a ``write_out_of_fold`` file; every sample
    needs a score, and the file's reference labels must match the data's (same file, same parse)."""
    rows = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"line {line_no} is not JSON ({exc.msg}): pass the out_of_fold.jsonl evaluate wrote"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("sample_id"), str):
            raise ValueError(f"line {line_no}: field 'sample_id' is missing or not a string")
        p = row.get("p_a")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"line {line_no} (sample {row['sample_id']!r}): field 'p_a' must be a number in [0, 1]")
        if row.get("reference") not in ("A", "B"):
            raise ValueError(f"line {line_no} (sample {row['sample_id']!r}): field 'reference' must be 'A' or 'B'")
        rows[row["sample_id"]] = row
    missing = [s.sample_id for s in samples if s.sample_id not in rows]
    if missing:
        raise ValueError(f"no score for {len(missing)} samples of --data, e.g. {missing[:3]}: score the same file")
    changed = [s.sample_id for s in samples if rows[s.sample_id]["reference"] != s.reference_label]
    if changed:
        raise ValueError(f"reference labels differ for {len(changed)} samples, e.g. {changed[:3]}: score the same file")
    kinds = {rows[s.sample_id].get("labeler", "embedding") for s in samples}
    return np.array([rows[s.sample_id]["p_a"] for s in samples]), "+".join(sorted(kinds))


def as_labels(sample_ids: Sequence[str], p_a: np.ndarray) -> list[AILabel]:
    return [
        AILabel(sample_id=sid, p_a=float(p), labeler_name="evaluate", labeler_version="out-of-fold")
        for sid, p in zip(sample_ids, p_a, strict=True)
    ]


def auto_accepted(labels: Sequence[AILabel], threshold: float | None) -> np.ndarray:
    """Which samples the real routing sends on without a human, at this labeler threshold."""
    # low = high: nothing lands in the "judge and human" middle band; audits are off because
    # the replay evaluates routing itself (the calibration split plays the audit set).
    policy = RoutingPolicy(high=threshold, low=0.5 if threshold is None else threshold, audit_rate=0.0)
    out = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        route = route_after_labeler(label.sample_id, label, policy)
        out[i] = route.to_judge and not route.to_human
    return out


def final_agreement(auto: np.ndarray, correct: np.ndarray) -> float:
    """Humans (the reference) label everything not auto-accepted, so only auto-labels can disagree."""
    return float(np.mean(np.where(auto, correct, True))) if auto.size else float("nan")


def guarantee_splits(
    sample_ids: Sequence[str],
    p_a: np.ndarray,
    prefers_a: np.ndarray,
    alpha: float,
    delta: float,
    n_splits: int,
    calibration_share: float,
    min_calibration_size: int,
    method: str,
    seed: int = 0,
    procedure: str = DEFAULT_PROCEDURE,
) -> dict[str, Any]:
    """The split check: realised error on the test part, so test-split noise alone counts violations."""
    rng = np.random.default_rng(seed)
    labels = as_labels(sample_ids, p_a)
    correct = (p_a >= 0.5) == prefers_a
    n = len(labels)
    n_cal = int(round(calibration_share * n))
    rows = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        cal, test = perm[:n_cal], perm[n_cal:]
        calibrator = fit_calibrator(p_a[cal], prefers_a[cal], method=method)  # type: ignore[arg-type]
        res = guaranteed_threshold(
            confidence_of(p_a[cal]), correct[cal], alpha, delta, min_calibration_size, procedure=procedure
        )
        auto = auto_accepted([labels[i] for i in test], res.threshold)
        n_auto = int(auto.sum())
        err = float(np.mean(~correct[test][auto])) if n_auto else 0.0
        cal_conf_test = calibrator.calibrate_confidence(confidence_of(p_a[test]))
        rows.append(
            {
                "threshold": res.threshold,
                "coverage": n_auto / len(test),
                "auto_error": err,
                "violated": bool(n_auto and err > alpha),
                "final_agreement": final_agreement(auto, correct[test]),
                "ece_raw": expected_calibration_error(confidence_of(p_a[test]), correct[test]),
                "ece_calibrated": expected_calibration_error(cal_conf_test, correct[test]),
            }
        )
    chose = [r for r in rows if r["threshold"] is not None]
    auto_acc = [1 - r["auto_error"] for r in chose if r["coverage"] > 0]
    return {
        "alpha": alpha,
        "delta": delta,
        "n_splits": n_splits,
        "n_calibration": n_cal,
        "n_test": n - n_cal,
        "share_with_threshold": len(chose) / n_splits,
        "violation_rate": sum(r["violated"] for r in rows) / n_splits,
        "mean_coverage": float(np.mean([r["coverage"] for r in rows])),
        "median_threshold": float(np.median([r["threshold"] for r in chose])) if chose else None,
        "mean_auto_agreement": float(np.mean(auto_acc)) if auto_acc else None,
        "mean_final_agreement": float(np.mean([r["final_agreement"] for r in rows])),
        "human_share": 1 - float(np.mean([r["coverage"] for r in rows])),
        "ece_raw": float(np.nanmean([r["ece_raw"] for r in rows])),
        "ece_calibrated": float(np.nanmean([r["ece_calibrated"] for r in rows])),
    }


def oracle_coverage(p_a: np.ndarray, prefers_a: np.ndarray, alpha: float) -> float:
    """Coverage of the loosest threshold whose realised error on the whole file is <= alpha (hindsight)."""
    conf, wrong = confidence_of(p_a), (p_a >= 0.5) != prefers_a
    order = np.argsort(-conf, kind="stable")
    c, cum_err = conf[order], np.cumsum(wrong[order]) / np.arange(1, conf.size + 1)
    last_of_tie = np.r_[c[1:] != c[:-1], True]  # "confidence >= t" takes all ties
    ok = np.nonzero(last_of_tie & (cum_err <= alpha))[0]
    return float((ok[-1] + 1) / conf.size) if ok.size else 0.0


def population_check(
    p_a: np.ndarray,
    prefers_a: np.ndarray,
    alpha: float,
    delta: float,
    n_draws: int,
    calibration_size: int,
    min_calibration_size: int,
    procedure: str = DEFAULT_PROCEDURE,
    seed: int = 0,
) -> dict[str, Any]:
    """Validity against a population: the file is the population, calibration sets are drawn from
    it with replacement, and a draw violates the guarantee when the error of the samples its
    threshold accepts *in the whole file* exceeds alpha (no test-split noise; at most delta expected)."""
    rng = np.random.default_rng(seed)
    conf, correct = confidence_of(p_a), (p_a >= 0.5) == prefers_a
    coverage, violated = np.zeros(n_draws), np.zeros(n_draws, dtype=bool)
    for d in range(n_draws):
        idx = rng.integers(0, conf.size, calibration_size)
        res = guaranteed_threshold(conf[idx], correct[idx], alpha, delta, min_calibration_size, procedure=procedure)
        if res.threshold is not None:
            accepted = conf >= res.threshold
            coverage[d] = accepted.mean()
            violated[d] = bool(np.mean(~correct[accepted]) > alpha)
    oracle = oracle_coverage(p_a, prefers_a, alpha)
    return {
        "procedure": procedure,
        "alpha": alpha,
        "delta": delta,
        "n_draws": n_draws,
        "calibration_size": calibration_size,
        "mean_coverage": float(coverage.mean()),
        "oracle_coverage": oracle,
        "efficiency": float(coverage.mean() / oracle) if oracle > 0 else None,
        "population_violation_rate": float(violated.mean()),
    }


def cost_quality_curves(
    sample_ids: Sequence[str], p_a: np.ndarray, prefers_a: np.ndarray, seed: int = 0
) -> dict[str, list]:
    """(human share, final agreement) points for fixed raw thresholds and random routing."""
    correct = (p_a >= 0.5) == prefers_a
    conf = confidence_of(p_a)
    labels = as_labels(sample_ids, p_a)
    fixed = []
    for t in np.quantile(conf, np.linspace(0.0, 1.0, 21)):
        auto = auto_accepted(labels, float(t))
        fixed.append(
            {"threshold": float(t), "human_share": 1 - float(auto.mean()), "agreement": final_agreement(auto, correct)}
        )
    rng = np.random.default_rng(seed)
    random_pts = []
    for h in np.linspace(0.0, 1.0, 21):
        draws = [final_agreement(rng.uniform(0, 1, len(correct)) >= h, correct) for _ in range(20)]
        random_pts.append({"human_share": float(h), "agreement": float(np.mean(draws))})
    return {"fixed_threshold": fixed, "random": random_pts}


def top_share_accuracy(
    p_a: np.ndarray, prefers_a: np.ndarray, shares: Sequence[float] = (1.0, 0.5, 0.3)
) -> dict[str, float]:
    correct = (p_a >= 0.5) == prefers_a
    order = np.argsort(-confidence_of(p_a), kind="stable")
    return {f"top_{round(s * 100)}pct": float(correct[order[: max(1, int(s * len(order)))]].mean()) for s in shares}


def plot_cost_quality(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = report["cost_quality"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(
        [p["human_share"] for p in curves["random"]], [p["agreement"] for p in curves["random"]], label="random routing"
    )
    ax.plot(
        [p["human_share"] for p in curves["fixed_threshold"]],
        [p["agreement"] for p in curves["fixed_threshold"]],
        marker=".",
        label="fixed uncalibrated threshold",
    )
    g = curves["guaranteed"]
    ax.plot(
        [p["human_share"] for p in g],
        [p["mean_final_agreement"] for p in g],
        marker="o",
        label="guaranteed: final dataset (humans count as right)",
    )
    # The guarantee is about the auto-labels alone: their agreement, each point with its alpha.
    auto = [p for p in g if p["mean_auto_agreement"] is not None]
    ax.plot([p["human_share"] for p in auto], [p["mean_auto_agreement"] for p in auto], marker="s", linestyle=":",
            label="guaranteed: auto-labels only")  # fmt: skip
    for p in auto:
        ax.annotate(f"a={p['alpha']:.2f}", (p["human_share"], p["mean_auto_agreement"]), fontsize=6,
                    textcoords="offset points", xytext=(3, -8))  # fmt: skip
    cfg = report["guarantee"]
    target = f"target 1 - alpha = {1 - cfg['alpha']:.2f}"
    ax.axhline(1 - cfg["alpha"], color="grey", linestyle="--", linewidth=1, label=target)
    ax.scatter([cfg["human_share"]], [cfg["mean_final_agreement"]], s=80, color="red", zorder=5,
               label=f"configured alpha={cfg['alpha']}, delta={cfg['delta']}")  # fmt: skip
    ax.set_xlabel("share of samples sent to humans")
    ax.set_ylabel("agreement with reference")
    ax.set_title(f"cost vs quality ({report['n_samples']} samples)")
    ax.legend(fontsize=7, loc="upper left")  # the auto-label points sit low on the right
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_report(
    samples: Sequence[Sample],
    p_a: np.ndarray,
    alpha: float,
    delta: float,
    n_splits: int,
    calibration_share: float,
    min_calibration_size: int,
    method: str,
    out_dir: Path,
) -> dict[str, Any]:
    ids = [s.sample_id for s in samples]
    prefers_a = np.array([s.reference_label == "A" for s in samples])
    correct = (p_a >= 0.5) == prefers_a
    split_args = dict(
        n_splits=n_splits, calibration_share=calibration_share, min_calibration_size=min_calibration_size, method=method
    )
    configured = guarantee_splits(ids, p_a, prefers_a, alpha, delta, **split_args)
    sweep_splits = max(10, n_splits // 5)  # the sweep only draws the curve; the check uses all splits
    # The configured alpha's sweep point is the configured check itself, so the two figures agree.
    sweep = [
        configured
        if a == alpha
        else guarantee_splits(ids, p_a, prefers_a, a, delta, **{**split_args, "n_splits": sweep_splits})
        for a in sorted({*ALPHA_SWEEP, alpha})
    ]
    population = population_check(
        p_a, prefers_a, alpha, delta, n_splits, int(round(calibration_share * len(samples))), min_calibration_size
    )
    curves = cost_quality_curves(ids, p_a, prefers_a)
    curves["guaranteed"] = sweep
    report = {
        "n_samples": len(samples),
        "labeler_accuracy": top_share_accuracy(p_a, prefers_a),
        # (coverage, accuracy) pairs: agreement on the most confident share of samples, raw order.
        "coverage_accuracy": [
            {"coverage": share, "accuracy": acc}
            for share, acc in zip(
                COVERAGE_GRID, top_share_accuracy(p_a, prefers_a, COVERAGE_GRID).values(), strict=True
            )
        ],
        "ece_raw_all": expected_calibration_error(confidence_of(p_a), correct),
        "guarantee": configured,
        # The procedure on every sample at once: the threshold (or the audit labels still
        # missing) that a calibration set the size of the whole file would give.
        "whole_file_threshold": guaranteed_threshold(
            confidence_of(p_a), correct, alpha, delta, min_calibration_size
        ).summary(),
        # Validity against the file as population (calibration sets drawn with replacement); the
        # split check above ("guarantee".violation_rate) also counts test-split noise as violations.
        "population_check": population,
        "guarantee_holds": bool(
            population["population_violation_rate"] <= delta + 2 * np.sqrt(delta * (1 - delta) / n_splits)
        ),
        "cost_quality": curves,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    report["plot"] = str(plot_cost_quality(report, out_dir / "cost_quality.png"))
    # Calibrated points are cross-fitted (each half calibrated by a map fitted on the other half):
    # an in-sample isotonic line is calibrated by construction and would say nothing.
    conf = confidence_of(p_a)
    half = np.array([fold_of(i, 2) for i in ids])
    cross = np.empty_like(conf)
    for h in (0, 1):
        cal = fit_calibrator(p_a[half != h], prefers_a[half != h], method=method)  # type: ignore[arg-type]
        cross[half == h] = cal.calibrate_confidence(conf[half == h])
    report["reliability_plot"] = str(
        plot_reliability(
            {"raw, out-of-fold": (conf, correct), f"{method}, cross-fitted": (cross, correct)},
            out_dir / "reliability.png",
        )
    )
    return report
