"""Power and validity of each threshold procedure on out-of-fold scores (no model fitting).

    juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --out /tmp/eval-hh
    OMP_NUM_THREADS=1 python benchmarks/guarantee_power.py --scores /tmp/eval-hh/out_of_fold.jsonl

The scored file is the population. For each procedure and alpha: mean coverage of the certified
threshold over calibration sets drawn from it with replacement, efficiency against the oracle
(the loosest threshold whose error on the whole file is <= alpha), the population violation rate
(error in the file among accepted samples > alpha; the guarantee says <= delta), and the old
split figure (realised error on the other half > alpha, which test-split noise inflates).
Focused audits (fewer labels per certified label): benchmarks/focused_audits.py.
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
