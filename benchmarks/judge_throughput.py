"""PYTHONPATH=. VLLM_CPU_KVCACHE_SPACE=1 OMP_NUM_THREADS=1 .venv-vllm/bin/python benchmarks/judge_throughput.py --model-config tiny --cpu --principles 2 --block-size 32

Judge-stage throughput on vLLM, in one process, on the same prompts and engine settings:

1. ``VLLMJudge.judge`` (prompt building, one generate for both orders, verdict parsing) against
   raw ``LLM.generate`` on the very same prompts and ``SamplingParams``: the judge's overhead.
   Target: judge/raw >= 0.9.
2. The cost of judging both A/B orders relative to one order, with prefix caching on and off
   (a second engine). Every prompt opens with the constitution and the two orders of a sample
   share everything up to the responses, so with caching the pair should cost <= 1.3x a
   single order, against ~2x without.

The prefix cache is reset before every timed run, so no run reuses another run's prompts.
``--model-config qwen2-0.5b`` builds a ~0.5B random Qwen2-shaped model for a GPU run, e.g.
``... --model-config qwen2-0.5b --samples 512 --prompt-tokens 1024 --constitution <short.yaml>``
(our local tokenizer is near byte-level, so the default constitution alone is ~900 tokens;
``--principles 2`` leaves room for the sample). Prefix reuse happens per KV block (128 tokens by
default on CPU, 16 on GPU): the two orders of a sample share their KV only up to the last full
block before the responses, so ``--block-size 32`` on CPU. ``--model DIR`` benchmarks a real
checkpoint with its own tokenizer.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.prompting import build_judge_prompts
from models.judges.vllm_judge import VLLMJudge, use_cpu_engine

# Random models: weights carry no meaning, only shapes matter for throughput.
MODEL_CONFIGS = {
    "tiny": {"hidden_size": 128, "layers": 2},  # models/tiny.py defaults; head_dim 64
    # Qwen2-0.5B's shape (hidden 896, 24 layers, 14 heads of 64, 2 KV heads, vocab 151936).
    "qwen2-0.5b": {
        "hidden_size": 896, "layers": 24, "heads": 14, "kv_heads": 2, "intermediate": 4864, "vocab": 151936,
    },
}  # fmt: skip
WORDS = "the quick brown fox jumps over the lazy dog please answer politely with a list".split()


def build_model(name: str, out_dir: Path) -> Path:
    """A random causal LM of the named shape plus our locally trained tokenizer (no download)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from models.tiny import build_tiny_causal_lm, build_tokenizer

    shape = MODEL_CONFIGS[name]
    if name == "tiny":
        return build_tiny_causal_lm(out_dir, hidden_size=shape["hidden_size"], layers=shape["layers"])
    tokenizer = build_tokenizer(out_dir)
    common = dict(
        vocab_size=shape["vocab"], hidden_size=shape["hidden_size"], intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,  # Qwen2-0.5B ties them: ~494M params
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(**common)).to(torch.bfloat16).save_pretrained(str(out_dir))
    return out_dir


def make_samples(n: int, prompt_tokens: int, tokenizer, constitution, seed: int) -> list[Sample]:
    """n distinct samples whose verdict prompts are about ``prompt_tokens`` tokens long."""
    base = build_judge_prompts(
        Sample(sample_id="x", prompt="", response_a="", response_b=""), constitution.principles
    )[0]
    budget = max(8, prompt_tokens - len(tokenizer(base)["input_ids"]))
    samples = []
    for i in range(n):
        # Distinct words per sample (seeded), so prompts share only the constitution and layout.
        words = [WORDS[(seed * 7919 + i * 31 + j * 17) % len(WORDS)] for j in range(budget)]
        text = " ".join(words)
        ids = tokenizer(text)["input_ids"][:budget]
        # HH-RLHF-like split: a multi-turn conversation (60%) and two shorter responses (20% each).
        cut1, cut2 = int(len(ids) * 0.6), int(len(ids) * 0.8)
        conversation, response_a, response_b = (tokenizer.decode(x) for x in (ids[:cut1], ids[cut1:cut2], ids[cut2:]))
        samples.append(
            Sample(sample_id=f"b{seed}-{i}", prompt=f"{i}: {conversation}", response_a=response_a, response_b=response_b)  # noqa: E501
        )
    return samples


def timed(fns: dict[str, Callable[[], object]], reset: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall time of each function over ``repeats`` rounds, prefix cache reset before each.

    The functions run interleaved (a, b, a, b, ...), so load from other processes on a shared
    machine hits them alike instead of skewing whichever ran during a busy spell.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            reset()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="VLLMJudge throughput vs raw vLLM generate")
    parser.add_argument("--model", type=Path, help="an existing HF model dir (else --model-config builds one)")
    parser.add_argument("--model-config", choices=sorted(MODEL_CONFIGS), default="tiny")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=960, help="verdict prompt length (tiny model: < 4096)")
    parser.add_argument("--constitution", type=Path, default=DEFAULT_CONSTITUTION)
    parser.add_argument("--principles", type=int, default=None, help="use only the first K principles")
    parser.add_argument("--block-size", type=int, default=None, help="KV block size; prefix reuse is per block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", action="store_true", help="float32, eager, 1 GiB KV cache")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--skip-no-cache", action="store_true", help="skip the second (caching off) engine")
    args = parser.parse_args()

    engine: dict[str, object] = {"tensor_parallel_size": args.tensor_parallel_size}
    if args.cpu:
        engine.update(use_cpu_engine())
    tmp = tempfile.TemporaryDirectory(prefix="judge-bench-")
    model_dir = args.model or build_model(args.model_config, Path(tmp.name))
    constitution = load_constitution(args.constitution)
    if args.principles:
        constitution = constitution.model_copy(update={"principles": constitution.principles[: args.principles]})
    if args.block_size:
        engine["block_size"] = args.block_size

    judge = VLLMJudge(model_dir, **engine)
    llm = judge.engine.llm  # loads the engine (prefix caching on)
    tokenizer = llm.get_tokenizer()
    sets = [make_samples(args.samples, args.prompt_tokens, tokenizer, constitution, seed) for seed in range(3)]
    judge.judge(sets[2][:4], constitution)  # warm-up: first-call allocations, not measured
    pairs = [build_judge_prompts(s, constitution.principles, judge.template) for s in sets[0]]
    both = [text for pair in pairs for text in pair]
    single = [pair[0] for pair in pairs]
    params = judge.engine.sampling_params()
    n_tokens = [len(ids) for ids in tokenizer(both)["input_ids"]]
    print(f"model {model_dir} ({args.model_config if not args.model else 'given'}), {args.samples} samples, "
          f"prompts {min(n_tokens)}-{max(n_tokens)} tokens, median of {args.repeats}")  # fmt: skip

    failed = [v.parse_error for v in judge.judge(sets[1], constitution) if v.parse_error]
    if failed:  # a benchmark of verdicts that were never read measures nothing
        raise SystemExit(f"{len(failed)} of {args.samples} samples failed, e.g. {failed[0]}: lower --prompt-tokens")
    t = timed(
        {
            "judge": lambda: judge.judge(sets[0], constitution),
            "raw": lambda: llm.generate(both, params, use_tqdm=False),
            "single": lambda: llm.generate(single, params, use_tqdm=False),
        },
        llm.reset_prefix_cache,
        args.repeats,
    )
    t_judge, t_raw, t_single = t["judge"], t["raw"], t["single"]
    n = args.samples
    print(f"judge.judge      : {n / t_judge:8.2f} samples/s ({t_judge:.3f} s, both orders)")
    print(f"raw generate     : {n / t_raw:8.2f} samples/s ({t_raw:.3f} s, same {2 * n} prompts and params)")
    print(f"judge / raw      : {t_raw / t_judge:8.3f}   (target >= 0.9)")
    print(f"pair / single, prefix caching ON : {t_raw / t_single:.3f}x   (target <= 1.3x)")
    judge.unload()

    if not args.skip_no_cache:
        cold = VLLMJudge(model_dir, enable_prefix_caching=False, **engine)
        cold_llm = cold.engine.llm
        cold.judge(sets[2][:4], constitution)
        t_off = timed(
            {
                "raw": lambda: cold_llm.generate(both, params, use_tqdm=False),
                "single": lambda: cold_llm.generate(single, params, use_tqdm=False),
            },
            lambda: None,
            args.repeats,
        )
        t_raw_off, t_single_off = t_off["raw"], t_off["single"]
        print(f"pair / single, prefix caching OFF: {t_raw_off / t_single_off:.3f}x   (~2x expected)")
        print(f"pair, caching ON vs OFF          : {t_raw / t_raw_off:.3f}x the time")
        print(f"pair with caching / single order without: {t_raw / t_single_off:.3f}x")
        cold.unload()
    tmp.cleanup()


if __name__ == "__main__":  # vLLM spawns its engine process: the guard keeps it from re-running main()
    main()
