"""Human labels per certified label: uniform audits against focused (confidence-stratified) audits.

    juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --out /tmp/eval-hh
    OMP_NUM_THREADS=1 python benchmarks/focused_audits.py --scores /tmp/eval-hh/out_of_fold.jsonl
    OMP_NUM_THREADS=1 python benchmarks/focused_audits.py --synthetic flat   # or steep: known error curves

The scored file (or a synthetic stream) is the population. For each audit budget B, calibration
sets of B labels are drawn from it: uniformly, or with ``--top-share`` of them from the samples at
or above the focus cut (the ``--focus-top`` most confident share of the stream: a label-free cut).
Both are tested by labeling.audit_design.focused_fixed_sequence (uniform audits are one stratum),
so the only difference is where the labels went. Prints mean certified coverage, the population
violation rate (error among accepted samples in the population > alpha; the guarantee says at most
delta), and the fewest labels (on the budget grid) whose mean certified coverage reaches each target.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.audit_design import focused_fixed_sequence  # noqa: E402
from labeling.calibration import confidence_of  # noqa: E402


def draw(rng, top: np.ndarray, rest: np.ndarray, budget: int, top_share: float | None, n: int) -> np.ndarray:
    if top_share is None:
        return rng.integers(0, n, budget)
    k_top = int(round(top_share * budget))
    return np.concatenate([top[rng.integers(0, top.size, k_top)], rest[rng.integers(0, rest.size, budget - k_top)]])


def measure(conf, wrong, alpha, delta, budget, cut, top_share, draws, seed=0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    top, rest = np.nonzero(conf >= cut)[0], np.nonzero(conf < cut)[0]
    coverage, violated = np.zeros(draws), np.zeros(draws, dtype=bool)
    for d in range(draws):
        idx = draw(rng, top, rest, budget, top_share, conf.size)
        focus = None if top_share is None else cut
        _, chosen = focused_fixed_sequence(conf[idx], wrong[idx], conf, focus, alpha, delta)
        if chosen is not None:
            accepted = conf >= chosen.threshold
            coverage[d], violated[d] = accepted.mean(), wrong[accepted].mean() > alpha
    return float(coverage.mean()), float(violated.mean())


def synthetic_stream(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Confidences uniform on [0.5, 1); P(wrong | c) falls linearly with c: from 0.5 to 0.1
    ("steep": thresholds far below the top certify) or from 0.5 to 0.2 ("flat", like the HH
    labeler: only the top certifies, and only with many audits there)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    slope = {"steep": 0.8, "flat": 0.6}[kind]
    return conf, rng.random(n) < 0.5 - slope * (conf - 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, help="out_of_fold.jsonl written by juryflow evaluate")
    parser.add_argument("--synthetic", choices=["flat", "steep"], help="a generated stream instead of a file")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.28, 0.34, 0.38])
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 450, 600, 900, 1200, 1800, 2400])
    parser.add_argument("--focus-top", type=float, default=0.4, help="share of the stream at or above the cut")
    parser.add_argument("--top-share", type=float, default=0.8, help="share of audit labels drawn above the cut")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.synthetic:
        conf, wrong = synthetic_stream(args.synthetic, 20_000)
        source = f"{args.synthetic} synthetic stream of 20000"
    elif args.scores:
        rows = [json.loads(line) for line in args.scores.read_text(encoding="utf-8").splitlines() if line.strip()]
        p_a = np.array([r["p_a"] for r in rows], dtype=float)
        conf, wrong = confidence_of(p_a), (p_a >= 0.5) != np.array([r["reference"] == "A" for r in rows])
        source = f"{args.scores} ({len(rows)} samples)"
    else:
        parser.error("give --scores FILE or --synthetic")
    cut = float(np.quantile(conf, 1 - args.focus_top))
    print(f"{source}; delta {args.delta}; focus cut {cut:.4f} (top {args.focus_top:.0%} of the stream), "
          f"focused audits draw {args.top_share:.0%} of their labels above it; {args.draws} draws")  # fmt: skip
    print("alpha  labels  uniform: coverage  violations   focused: coverage  violations")
    out = []
    for alpha in args.alphas:
        for budget in args.budgets:
            u = measure(conf, wrong, alpha, args.delta, budget, cut, None, args.draws)
            f = measure(conf, wrong, alpha, args.delta, budget, cut, args.top_share, args.draws)
            out.append({"alpha": alpha, "labels": budget, "uniform": u, "focused": f})
            print(f"{alpha:5.2f}  {budget:6d}  {u[0]:17.1%}  {u[1]:10.1%}   {f[0]:17.1%}  {f[1]:10.1%}", flush=True)
    print("fewest labels (budget grid) whose mean certified coverage reaches the target:")
    for alpha in args.alphas:
        rows_a = [r for r in out if r["alpha"] == alpha]
        for target in (0.05, 0.1, 0.2, 0.3, 0.4):
            need = {k: next((r["labels"] for r in rows_a if r[k][0] >= target), None) for k in ("uniform", "focused")}
            if need["uniform"] is None and need["focused"] is None:
                continue
            print(f"  alpha {alpha:.2f}, coverage {target:.0%}: uniform {need['uniform'] or '>max'}, "
                  f"focused {need['focused'] or '>max'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
