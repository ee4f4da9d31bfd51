"""Power and validity of each threshold procedure on out-of-fold scores (no model fitting).

    juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --out /tmp/eval-hh
    OMP_NUM_THREADS=1 python benchmarks/guarantee_power.py --scores /tmp/eval-hh/out_of_fold.jsonl

The scored file is the population. For each procedure and alpha: mean coverage of the certified
threshold over calibration sets drawn from it with replacement, efficiency against the oracle
(the loosest threshold whose error on the whole file is <= alpha), the population violation rate
(error in the file among accepted samples > alpha; the guarantee says <= delta), and the old
split figure (realised error on the other half > alpha, which test-split noise inflates).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.evaluate import guarantee_splits, population_check  # noqa: E402
from labeling.threshold_procedures import PROCEDURES  # noqa: E402


def single_threshold_ceiling(p_a: np.ndarray, prefers_a: np.ndarray, alpha: float, delta: float, n_cal: int,
                             draws: int, seed: int = 0) -> float:  # fmt: skip
    """The most any valid procedure can expect: one threshold known in advance (no multiplicity,
    chosen with hindsight among those whose population error is <= alpha), tested once at delta;
    max over coverage q of q * P(its Clopper-Pearson bound passes)."""
    from labeling.calibration import confidence_of
    from labeling.guarantee import clopper_pearson_upper

    conf, wrong = confidence_of(p_a), (p_a >= 0.5) != prefers_a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, conf.size, (draws, n_cal))
    best = 0.0
    for q in np.arange(0.01, 1.0001, 0.01):
        t = np.quantile(conf, 1 - q)
        accepted = conf >= t
        if np.mean(wrong[accepted]) > alpha:
            continue
        n = accepted[idx].sum(axis=1)
        k = (accepted & wrong)[idx].sum(axis=1)
        passed = np.asarray(clopper_pearson_upper(k, n, delta)) <= alpha
        best = max(best, float(accepted.mean() * passed.mean()))
    return best


def confidence_weighted_audits(p_a: np.ndarray, prefers_a: np.ndarray, alpha: float, delta: float, n_labels: int,
                               top_share: float, draws: int, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Audits drawn with a higher inclusion probability in the most confident half (fixed from the
    confidences, before any label): ``top_share`` of ``n_labels`` come from that half. Within the half the
    inclusion probability is constant, so thresholds inside it are tested on those audits alone,
    unweighted (the inverse-probability weights cancel); the rest serve calibration and drift."""
    from labeling.calibration import confidence_of
    from labeling.guarantee import guaranteed_threshold

    conf, correct = confidence_of(p_a), (p_a >= 0.5) == prefers_a
    top = np.nonzero(conf >= np.median(conf))[0]
    rng = np.random.default_rng(seed)
    coverage, violated = np.zeros(draws), np.zeros(draws, dtype=bool)
    for d in range(draws):
        idx = top[rng.integers(0, top.size, int(round(top_share * n_labels)))]
        res = guaranteed_threshold(conf[idx], correct[idx], alpha, delta, 100)
        if res.threshold is not None:
            accepted = conf >= res.threshold
            coverage[d], violated[d] = accepted.mean(), np.mean(~correct[accepted]) > alpha
    return {"mean_coverage": float(coverage.mean()), "population_violation_rate": float(violated.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, required=True, help="out_of_fold.jsonl written by juryflow evaluate")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.28, 0.34, 0.38])
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=400, help="calibration sets drawn per procedure and alpha")
    parser.add_argument("--calibration-size", type=int, default=None, help="default: half the file, as evaluate")
    parser.add_argument("--splits", type=int, default=100, help="calibration/test splits for the old split figure")
    parser.add_argument("--procedures", nargs="*", default=list(PROCEDURES))
    parser.add_argument("--grid-step", type=float, default=None, help="override every procedure's coverage grid step")
    parser.add_argument("--weighted-top-share", type=float, default=None,
                        help="also measure audits with this share drawn from the most confident half")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    if args.grid_step is not None:
        import labeling.threshold_procedures as procedures

        procedures._GRID_STEP.update(dict.fromkeys(procedures._GRID_STEP, args.grid_step))
    rows = [json.loads(line) for line in args.scores.read_text(encoding="utf-8").splitlines() if line.strip()]
    p_a = np.array([r["p_a"] for r in rows], dtype=float)
    prefers_a = np.array([r["reference"] == "A" for r in rows])
    ids = [r["sample_id"] for r in rows]
    n_cal = args.calibration_size or len(rows) // 2
    print(f"{len(rows)} samples, calibration sets of {n_cal}, delta {args.delta}, {args.draws} draws")
    print("procedure        alpha  coverage  oracle  efficiency  pop.violations  split-check violations")
    out = []
    for alpha in args.alphas:
        ceiling = single_threshold_ceiling(p_a, prefers_a, alpha, args.delta, n_cal, args.draws)
        print(f"{'single-threshold ceiling':24s} alpha {alpha:.2f}: expected coverage {ceiling:.1%}", flush=True)
        out.append({"procedure": "single-threshold ceiling", "alpha": alpha, "mean_coverage": ceiling})
    if args.weighted_top_share is not None:
        for alpha in args.alphas:
            share = args.weighted_top_share
            w = confidence_weighted_audits(p_a, prefers_a, alpha, args.delta, n_cal, share, args.draws)
            print(f"{'weighted audits':16s} {alpha:5.2f}  {w['mean_coverage']:8.1%}  ({share:.0%} of "
                  f"{n_cal} labels from the top half; population violations {w['population_violation_rate']:.1%})",
                  flush=True)  # fmt: skip
            out.append({"procedure": "weighted audits", "alpha": alpha, **w})
    for procedure in args.procedures:
        for alpha in args.alphas:
            pop = population_check(p_a, prefers_a, alpha, args.delta, args.draws, n_cal, 100, procedure)
            split = {"violation_rate": float("nan")}  # no test half left when calibrating on the whole size
            if n_cal < len(rows):
                split = guarantee_splits(
                    ids, p_a, prefers_a, alpha, args.delta, args.splits, n_cal / len(rows), 100, "isotonic",
                    procedure=procedure,
                )  # fmt: skip
            pop["split_violation_rate"] = split["violation_rate"]
            out.append(pop)
            eff = "n/a" if pop["efficiency"] is None else f"{pop['efficiency']:.2f}"
            print(
                f"{procedure:16s} {alpha:5.2f}  {pop['mean_coverage']:8.1%}  {pop['oracle_coverage']:6.1%}  "
                f"{eff:>10s}  {pop['population_violation_rate']:14.1%}  {split['violation_rate']:8.1%}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
