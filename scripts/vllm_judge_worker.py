"""Judge samples with VLLMJudge in the vLLM venv and write the verdicts as JSON.

    PYTHONPATH=. VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python scripts/vllm_judge_worker.py \
        --model <model dir> --samples samples.jsonl --out verdicts.json [--critique-too] [--cpu]

vLLM conflicts with the app venv, so the app (and the tests) drive the in-process vLLM judge
through this script in `.venv-vllm`. One engine start serves every mode asked for: the verdict
judge and, with ``--critique-too``, a critique-mode judge on the same engine (``with_recipe``).
Output: ``{"version": ..., "verdicts": [...], "critique_verdicts": [...]}`` (JudgeVerdict dumps).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.vllm_judge import VLLMJudge, use_cpu_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF model directory")
    parser.add_argument("--samples", required=True, type=Path, help="JSONL, one Sample per line")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--constitution", type=Path, default=DEFAULT_CONSTITUTION)
    parser.add_argument("--critique-too", action="store_true", help="also judge in critique mode, same engine")
    parser.add_argument("--cpu", action="store_true", help="float32, eager, small KV cache: the CPU settings")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lines = args.samples.read_text(encoding="utf-8").splitlines()
    samples = [Sample.model_validate_json(line) for line in lines if line.strip()]
    constitution = load_constitution(args.constitution)
    engine = use_cpu_engine() if args.cpu else {}
    judge = VLLMJudge(args.model, constitution=constitution, tensor_parallel_size=args.tensor_parallel_size, **engine)
    result: dict[str, object] = {"version": judge.version}
    with judge:
        result["verdicts"] = [v.model_dump(mode="json") for v in judge.judge(samples, constitution)]
        if args.critique_too:
            critic = judge.with_recipe(critique=True)
            result["critique_version"] = critic.version
            result["critique_verdicts"] = [v.model_dump(mode="json") for v in critic.judge(samples, constitution)]
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"wrote {len(samples)} verdicts to {args.out}")


if __name__ == "__main__":  # vLLM spawns its engine process: the guard keeps it from re-running main()
    main()
