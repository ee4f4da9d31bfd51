"""Held-out measurements: reward-model pairwise accuracy, and a policy's report card."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from models.training.loading import load_causal_lm, load_chat_tokenizer, load_reward_model, render_prompts, reward_scores


def pairwise_accuracy(model, tokenizer, rows) -> dict[str, float]:
    """Share of pairs where r(chosen) > r(rejected), overall and per label source.

    ``rows`` is a datasets.Dataset (or dict of lists) with prompt, chosen, rejected, source.
    """
    prompts, sources = list(rows["prompt"]), list(rows["source"])
    chosen = reward_scores(model, tokenizer, prompts, list(rows["chosen"]))
    rejected = reward_scores(model, tokenizer, prompts, list(rows["rejected"]))
    correct = (chosen > rejected).tolist()
    by_source: dict[str, list[bool]] = defaultdict(list)
    for source, ok in zip(sources, correct, strict=True):
        by_source[source].append(ok)
    metrics = {"accuracy": sum(correct) / len(correct), "n_pairs": len(correct), "mean_margin": float((chosen - rejected).mean())}
    for source, oks in sorted(by_source.items()):
        metrics[f"accuracy_{source}"] = sum(oks) / len(oks)
        metrics[f"n_{source}"] = len(oks)
    return metrics


@torch.no_grad()
def sequence_logprob(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log pi(token) over response tokens. input_ids (B, T) -> (B,)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()  # (B, T-1, V)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return (logp * response_mask[:, 1:]).sum(-1)


@torch.no_grad()
def policy_report(policy, reference, tokenizer, reward_model, reward_tokenizer, prompts: Sequence[str], max_new_tokens: int) -> dict[str, float]:
    """Mean RM score of the policy vs the reference on held-out prompts, KL(policy||ref) and win rate.

    KL is the Monte-Carlo estimate E_{y~policy}[log pi(y|x) - log pi_ref(y|x)] per response.
    """
    policy.eval()
    reference.eval()
    enc = render_prompts(tokenizer, prompts).to(next(policy.parameters()).device)
    gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=True, pad_token_id=tokenizer.pad_token_id)
    out_policy = policy.generate(**enc, **gen_kwargs)  # (B, P+N)
    out_ref = reference.generate(**enc, **gen_kwargs)
    prompt_len = enc["input_ids"].shape[1]

    def texts_and_masks(out):
        responses = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
        attention = (out != tokenizer.pad_token_id).long()
        attention[:, :prompt_len] = enc["attention_mask"]
        response_mask = attention.clone()
        response_mask[:, :prompt_len] = 0
        return responses, attention, response_mask

    policy_texts, attn, resp_mask = texts_and_masks(out_policy)
    ref_texts, _, _ = texts_and_masks(out_ref)
    kl = sequence_logprob(policy, out_policy, attn, resp_mask) - sequence_logprob(reference, out_policy, attn, resp_mask)
    policy_scores = reward_scores(reward_model, reward_tokenizer, list(prompts), policy_texts)
    ref_scores = reward_scores(reward_model, reward_tokenizer, list(prompts), ref_texts)
    return {
        "rm_score_before": float(ref_scores.mean()),
        "rm_score_after": float(policy_scores.mean()),
        "kl_to_reference": float(kl.mean()),
        "win_rate_vs_reference": float((policy_scores > ref_scores).float().mean()),
        "n_prompts": len(prompts),
    }


def evaluate_policy_dir(config, policy_dir, reward_model_dir, prompts: Sequence[str]) -> dict[str, float]:
    """``policy_report`` for a trained policy directory against its recipe's starting model.

    Uses at most the recipe's ``eval_max_prompts`` prompts (64 if it has none) and generates
    as many tokens as the stage did in training.
    """
    device = config.device
    policy = load_causal_lm(policy_dir).to(device)
    reference = load_causal_lm(config.model_name_or_path).to(device)
    reward_model, reward_tokenizer = load_reward_model(reward_model_dir)
    prompts = list(prompts)[: getattr(config, "eval_max_prompts", 64)]
    max_new = getattr(config, "max_new_tokens", None) or getattr(config, "max_completion_length", None) or 64
    return policy_report(policy, reference, load_chat_tokenizer(config.model_name_or_path), reward_model.to(device),
                         reward_tokenizer, prompts, max_new)
