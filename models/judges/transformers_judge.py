"""A constitutional judge run in-process with Hugging Face transformers.

Both A/B orders of every sample go through the same forward batch. We read the next-token
distribution at the last position (left padding keeps it aligned across the batch), take the
log-softmax over the full vocabulary and turn the " A"/" B" log-probs into P(slot A).
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeling.constitution import Constitution, Principle
from labeling.schemas import JudgeVerdict, Sample
from models.base import Judge
from models.judges.prompting import (
    Critique,
    VERDICT_TOKENS,
    VerdictParseError,
    build_judge_prompts,
    critique_max_tokens,
    critique_scoring_prompt,
    load_template,
    p_a_from_orders,
    parse_critique,
    verdict_probability,
)

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersJudge(Judge):
    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "auto",
        batch_size: int = 16,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"TransformersJudge batch_size={batch_size}: must be >= 1")
        self.model_path = str(model_path)
        self.device = device
        self.batch_size = batch_size
        self.critique = critique
        self.principle_sample_k = principle_sample_k
        self.template = load_template(template_path, critique=critique)
        self._model: Any = None
        self._tokenizer: Any = None
        self._verdict_ids: dict[str, int] = {}
        self._max_length = 0

    @property
    def version(self) -> str:
        config_file = Path(self.model_path) / "config.json"
        config = config_file.read_text(encoding="utf-8") if config_file.is_file() else self.model_path
        blob = "\n".join([config, self.template.digest, str(self.critique), str(self.principle_sample_k)])
        return f"{Path(self.model_path).name}-{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:10]}"

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
        import torch

        self._model = self._tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]:
        self.load()
        principles = [constitution.sample_principles(s.sample_id, self.principle_sample_k) for s in samples]
        prompts = [
            build_judge_prompts(s, p, self.template, critique=self.critique) for s, p in zip(samples, principles)
        ]
        if self.critique:
            return self._judge_with_critique(samples, principles, prompts)
        flat = [text for pair in prompts for text in pair]  # both orders of a sample sit side by side
        scores = self.slot_a_probabilities(flat)
        return [
            self._verdict(s, p, scores[2 * i], scores[2 * i + 1]) for i, (s, p) in enumerate(zip(samples, principles))
        ]

    def _judge_with_critique(
        self, samples: Sequence[Sample], principles: list[list[Principle]], prompts: list[tuple[str, str]]
    ) -> list[JudgeVerdict]:
        flat = [text for pair in prompts for text in pair]
        max_new = [critique_max_tokens(len(p)) for p in principles for _ in (0, 1)]
        generated = self.generate(flat, max_new_tokens=max(max_new, default=16))
        scoring: list[str] = []
        parsed: list[tuple[str | None, str | None]] = []  # (critique text, parse error) per sample
        for i, p in enumerate(principles):
            ids = [x.id for x in p]
            try:
                crits = [_as_critique(generated[2 * i + k], ids) for k in (0, 1)]
            except VerdictParseError as exc:
                raw = f"original order:\n{generated[2 * i]}\n\nswapped order:\n{generated[2 * i + 1]}"
                parsed.append((raw, f"critique: {exc}"))
                scoring.extend(["", ""])
                continue
            scoring.extend(critique_scoring_prompt(flat[2 * i + k], crits[k]) for k in (0, 1))
            parsed.append((f"original order:\n{crits[0].as_text()}\n\nswapped order:\n{crits[1].as_text()}", None))
        todo = [j for j, text in enumerate(scoring) if text]
        scores: list[float | VerdictParseError] = [VerdictParseError("not scored")] * len(scoring)
        for j, score in zip(todo, self.slot_a_probabilities([scoring[j] for j in todo])):
            scores[j] = score
        verdicts = []
        for i, (s, p) in enumerate(zip(samples, principles)):
            text, error = parsed[i]
            if error is not None:
                verdicts.append(self._failed(s, p, error, critique=text))
            else:
                verdicts.append(self._verdict(s, p, scores[2 * i], scores[2 * i + 1], critique=text))
        return verdicts

    def _verdict(
        self,
        sample: Sample,
        principles: list[Principle],
        original: float | VerdictParseError,
        swapped: float | VerdictParseError,
        critique: str | None = None,
    ) -> JudgeVerdict:
        for order, result in (("original", original), ("swapped", swapped)):
            if isinstance(result, VerdictParseError):
                return self._failed(sample, principles, f"{order} order: {result}", critique)
        p_orig, p_swap = p_a_from_orders(original, swapped)  # type: ignore[arg-type]
        return JudgeVerdict(
            sample_id=sample.sample_id,
            p_a_original=p_orig,
            p_a_swapped=p_swap,
            principles=[p.id for p in principles],
            model=self.model_path,
            version=self.version,
            critique=critique,
        )

    def _failed(self, sample: Sample, principles: list[Principle], error: str, critique: str | None) -> JudgeVerdict:
        log.warning("judge could not read a verdict for sample %r: %s", sample.sample_id, error)
        return JudgeVerdict(
            sample_id=sample.sample_id,
            principles=[p.id for p in principles],
            model=self.model_path,
            version=self.version,
            critique=critique,
            parse_error=error,
        )

    def slot_a_probabilities(self, texts: Sequence[str]) -> list[float | VerdictParseError]:
        """P(slot A) per prompt from the next-token distribution; an error object where it cannot be read."""
        import torch

        self.load()
        results: list[float | VerdictParseError] = []
        step = 2 * self.batch_size  # batch_size counts samples; each sample has two orders
        for start in range(0, len(texts), step):
            chunk = list(texts[start : start + step])
            lengths = [len(ids) for ids in self._tokenizer(chunk)["input_ids"]]
            fits = [i for i, n in enumerate(lengths) if n <= self._max_length]
            chunk_results: list[float | VerdictParseError] = [
                VerdictParseError(f"judge prompt is {n} tokens; the model accepts at most {self._max_length}")
                for n in lengths
            ]
            if fits:
                batch = self._tokenizer([chunk[i] for i in fits], return_tensors="pt", padding=True)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with torch.inference_mode():
                    logits = self._model(**batch, position_ids=_position_ids(batch["attention_mask"])).logits
                logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)  # (B, V)
                ids = list(self._verdict_ids.values())
                picked = logprobs[:, ids].cpu().tolist()  # (B, n_verdict_tokens)
                for row, i in zip(picked, fits):
                    try:
                        chunk_results[i] = verdict_probability(dict(zip(self._verdict_ids, row)))
                    except VerdictParseError as exc:
                        chunk_results[i] = exc
            results.extend(chunk_results)
        return results

    def generate(self, texts: Sequence[str], max_new_tokens: int) -> list[str | VerdictParseError]:
        """Greedy continuations (critique mode), the new text only; an error where the prompt is too long."""
        import torch

        self.load()
        budget = self._max_length - max_new_tokens
        outputs: list[str | VerdictParseError] = []
        step = 2 * self.batch_size
        for start in range(0, len(texts), step):
            chunk = list(texts[start : start + step])
            lengths = [len(ids) for ids in self._tokenizer(chunk)["input_ids"]]
            # Truncating would cut the constitution or the cue, so an overlong prompt is an error.
            chunk_out: list[str | VerdictParseError] = [
                VerdictParseError(f"critique prompt is {n} tokens; with {max_new_tokens} new tokens the model "
                                  f"accepts at most {budget}")
                for n in lengths
            ]
            fits = [i for i, n in enumerate(lengths) if n <= budget]
            if fits:
                batch = self._tokenizer([chunk[i] for i in fits], return_tensors="pt", padding=True)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with torch.inference_mode():
                    out = self._model.generate(
                        **batch,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=self._tokenizer.pad_token_id,
                    )
                decoded = self._tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
                for i, text in zip(fits, decoded):
                    chunk_out[i] = text
            outputs.extend(chunk_out)
        return outputs


def _as_critique(output: str | VerdictParseError, principle_ids: list[str]) -> Critique:
    if isinstance(output, VerdictParseError):
        raise output
    return parse_critique(output, principle_ids)


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
