"""Routing cost vs quality on real HH-RLHF harmless rows, with the stated guarantee checked.

    OMP_NUM_THREADS=1 python benchmarks/evaluate_hh.py --out eval-hh

Same as `juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --splits 200`;
the data sit beside the repository and are never copied into it. Its out_of_fold.jsonl feeds
`benchmarks/guarantee_power.py --scores OUT/out_of_fold.jsonl`, which compares the threshold
procedures (coverage, efficiency against the oracle, validity against the file as population).
"""

from __future__ import annotations

import sys
from pathlib import Path

HH_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl.gz"

if __name__ == "__main__":
    if not HH_DEV.exists():
        sys.exit(f"HH-RLHF dev file not found at {HH_DEV}: it lives in ../shared/data beside the repository")
    from juryflow.cli_evaluate import app

    app(["--data", str(HH_DEV), "--folds", "5", "--splits", "200", *sys.argv[1:]])
