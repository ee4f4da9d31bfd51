"""A constitutional judge run in-process with Hugging Face transformers.

The recipe (both A/B orders per sample, critique mode, verdicts) is ``ConstitutionalJudge``'s;
``TransformersEngine`` scores and generates. Both orders of every sample go through the same forward batch. We
read the next-token distribution at the last position (left padding keeps it aligned across the
batch), take the log-softmax over the full vocabulary and turn the " A"/" B" log-probs into
P(slot A). A prompt too long for the model is that sample's parse error, never truncated:
truncating would cut the constitution or the verdict cue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeling.constitution import Constitution
from models.judges.constitutional import ConstitutionalJudge
from models.judges.engine import JudgeEngine, SlotScore, prompt_too_long
from models.judges.prompting import VERDICT_TOKENS, VerdictParseError, verdict_probability
from models.torch_runtime import free_accelerator_memory, resolve_device

log = logging.getLogger(__name__)


class TransformersEngine(JudgeEngine):
    """A local causal LM; bf16 on CUDA, float32 on CPU. ``batch_size`` counts samples (two prompts each)."""

    name = "transformers"

    def __init__(self, model_path: str | Path, device: str = "auto", batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError(f"TransformersJudge batch_size={batch_size}: must be >= 1")
        self.model_path = self.model_name = str(model_path)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._verdict_ids: dict[str, int] = {}
        self._max_length = 0

    def __repr__(self) -> str:
        return f"TransformersEngine({self.model_path!r}, device={self.device!r})"

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (self.name, self.model_path, self.device, self.batch_size)

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = resolve_device(self.device)
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        tokenizer.padding_side = "left"  # the verdict is read at the last position of every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(self.device)
        model.eval()
        self._verdict_ids = verdict_token_ids(tokenizer)
        limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
        self._max_length = min(int(x) for x in limits if x and x < 10**8)
        self._model, self._tokenizer = model, tokenizer
        log.info("loaded judge %s on %s (%s)", self.model_path, self.device, dtype)

    def unload(self) -> None:
        if self._model is None:
            return
        self._model = self._tokenizer = None
        free_accelerator_memory()

    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        """P(slot A) per prompt from the next-token distribution; an error object where it cannot be read."""
        import torch

        self.load()
        results: list[SlotScore] = [VerdictParseError("not scored")] * len(prompts)
        for chunk in self._chunks(range(len(prompts))):
            fits = self._fitting(prompts, [0] * len(prompts), chunk, results)
            if not fits:
                continue
            batch = self._encode([prompts[j] for j in fits])
            with torch.inference_mode():
                logits = self._model(**batch, position_ids=_position_ids(batch["attention_mask"])).logits
            logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (B, V)
            picked = logprobs[:, list(self._verdict_ids.values())].cpu().tolist()  # (B, n_verdict_tokens)
            for row, j in zip(picked, fits):
                try:
                    results[j] = verdict_probability(dict(zip(self._verdict_ids, row)))
                except VerdictParseError as exc:
                    results[j] = exc
        return results

    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        """Greedy continuations (critique mode), the new text only; an error where the prompt is too long.

        ``generate`` takes one ``max_new_tokens`` per call, so prompts are batched by budget. Both
        orders of a sample share a budget (and sit side by side), so they still share a batch.
        """
        import torch

        self.load()
        results: list[str | VerdictParseError] = [VerdictParseError("not generated")] * len(prompts)
        for budget in sorted(set(max_tokens)):
            for chunk in self._chunks([j for j, k in enumerate(max_tokens) if k == budget]):
                fits = self._fitting(prompts, max_tokens, chunk, results)
                if not fits:
                    continue
                batch = self._encode([prompts[j] for j in fits])
                with torch.inference_mode():
                    out = self._model.generate(
                        **batch, max_new_tokens=budget, do_sample=False, pad_token_id=self._tokenizer.pad_token_id
                    )
                new = out[:, batch["input_ids"].shape[1] :]  # (B, <= budget): the continuation only
                for j, text in zip(fits, self._tokenizer.batch_decode(new, skip_special_tokens=True)):
                    results[j] = text
        return results

    def _chunks(self, indices: Sequence[int]) -> list[list[int]]:
        step = 2 * self.batch_size  # batch_size counts samples; each sample has two orders
        return [list(indices[start : start + step]) for start in range(0, len(indices), step)]

    def _fitting(
        self, prompts: Sequence[str], new_tokens: Sequence[int], chunk: list[int], results: list[Any]
    ) -> list[int]:
        """The indices in ``chunk`` whose prompt plus new tokens fit the model; the rest get a length error."""
        lengths = [len(ids) for ids in self._tokenizer([prompts[j] for j in chunk])["input_ids"]]
        fits = []
        for j, n in zip(chunk, lengths):
            # Verdict mode reads the next-token distribution and generates nothing (0 new tokens).
            error = prompt_too_long(n, self._max_length, new_tokens[j], critique=new_tokens[j] > 0)
            if error is None:
                fits.append(j)
            else:
                results[j] = error
        return fits

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        batch = self._tokenizer(texts, return_tensors="pt", padding=True)  # left padding, see load()
        return {k: v.to(self.device) for k, v in batch.items()}


class TransformersJudge(ConstitutionalJudge):
    """The constitutional recipe on a ``TransformersEngine``."""

    engine: TransformersEngine

    def __init__(
        self,
        model_path: str | Path,
        device: str = "auto",
        batch_size: int = 16,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        constitution: Constitution | None = None,
    ) -> None:
        engine = TransformersEngine(model_path, device=device, batch_size=batch_size)
        super().__init__(engine, template_path, critique, principle_sample_k, constitution)

    @property
    def model_path(self) -> str:
        return self.engine.model_path

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size


def _position_ids(attention_mask: Any) -> Any:
    # Left padding: positions must count real tokens only, or a padded row would see shifted
    # rotary positions and score differently from the same prompt alone.
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def verdict_token_ids(tokenizer: Any) -> dict[str, int]:
    """The single-token spellings of the verdict letters ("A", " A", "B", " B") and their ids."""
    found: dict[str, int] = {}
    for tokens in VERDICT_TOKENS.values():
        for text in tokens:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1 and ids[0] not in found.values():
                found[text] = ids[0]
    letters = {text.strip() for text in found}
    if letters != {"A", "B"}:
        raise ValueError(
            f"the judge tokenizer has no single token for verdict letters {sorted({'A', 'B'} - letters)}: "
            "pick a judge model whose vocabulary encodes 'A'/' A' and 'B'/' B' as single tokens"
        )
    return found
