"""PPO for RLHF in one file, InstructGPT style (Ouyang et al. 2022; Ziegler et al. 2019).

    for each iteration:
        prompts  -> policy samples responses                       (rollout)
        reward   -> r_RM(prompt, response) at the last token, minus beta * (log pi - log pi_ref)
                    at every token                                 (per-token KL penalty)
        GAE      -> advantages and returns from the value head     (Schulman et al. 2016)
        ppo_epochs passes of clipped-ratio policy loss + clipped value loss over minibatches

TRL 1.x removed its PPOTrainer; this module is the small replacement. It runs the same on CPU
(tests, tiny models) and on one GPU (bf16 autocast, gradient checkpointing). For several GPUs use
RLOO or GRPO (TRL, ``accelerate launch``): this loop is deliberately single-process.

Shapes: B = rollouts in a batch, P = padded prompt length, N = generated tokens, V = vocabulary.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.training.config import PPOConfig
from models.training.loading import load_causal_lm, load_chat_tokenizer, load_reward_model, render_prompts, reward_scores

logger = logging.getLogger(__name__)


class PolicyWithValue(nn.Module):
    """A causal LM plus a scalar value head on its last hidden state."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)  # start with V = 0 so early advantages are just rewards
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions as generate() saw them
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      output_hidden_states=True, use_cache=False)
        values = self.value_head(out.hidden_states[-1].to(self.value_head.weight.dtype)).squeeze(-1)  # (B, T)
        return out.logits, values  # (B, T, V), (B, T)


class AdaptiveKLController:
    """Ziegler et al. 2019, eq. 2: move beta proportionally toward a target KL, clipped to +-20%."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = max(-0.2, min(0.2, current_kl / self.target - 1.0))
        self.value *= 1.0 + error * n_steps / self.horizon


class FixedKLController:
    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def response_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log pi(token) for each response token. logits (B, N, V) predict tokens (B, N) -> (B, N)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, tokens[..., None]).squeeze(-1)


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward -beta * (log pi - log pi_ref), plus the RM score on the last real token.

    scores (B,), logprobs/ref_logprobs/mask (B, N) -> rewards (B, N), per-token KL (B, N).
    """
    kl = (logprobs - ref_logprobs) * mask  # (B, N) k1 estimator of KL(pi || pi_ref)
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (B,) index of the last response token
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over response tokens. All (B, N) -> advantages, returns (B, N).

    delta_t = r_t + gamma * V_{t+1} - V_t ;  A_t = delta_t + gamma * lam * A_{t+1}; V after the end = 0.
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def ppo_losses(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
               values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange: float, cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate policy loss, clipped value loss, and the share of clipped ratios. Inputs (B, N)."""
    ratio = torch.exp(logprobs - old_logprobs)
    pg_unclipped = -advantages * ratio
    pg_clipped = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    policy_loss = masked_mean(torch.maximum(pg_unclipped, pg_clipped), mask)
    clipfrac = masked_mean((pg_clipped > pg_unclipped).float(), mask)
    values_clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    value_loss = 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (values_clipped - returns) ** 2), mask)
    return policy_loss, value_loss, clipfrac


@dataclass
class Rollout:
    sequences: torch.Tensor  # (B, P+N)
    attention_mask: torch.Tensor  # (B, P+N)
    mask: torch.Tensor  # (B, N) 1 for response tokens up to and including the first EOS
    logprobs: torch.Tensor  # (B, N) under the policy that sampled them
    ref_logprobs: torch.Tensor  # (B, N)
    values: torch.Tensor  # (B, N)
    scores: torch.Tensor  # (B,) reward-model score
    prompt_len: int


class PPOTrainer:
    """Owns the models and the optimiser; ``train(prompts)`` runs ``num_iterations`` PPO rounds."""

    def __init__(self, config: PPOConfig, policy_path: str, reward_model_dir: str | Path):
        self.config, self.device = config, config.device
        torch.manual_seed(config.seed)
        self.tokenizer = load_chat_tokenizer(policy_path)
        self.policy = PolicyWithValue(load_causal_lm(policy_path)).to(self.device)
        self.reference = load_causal_lm(policy_path).to(self.device).eval().requires_grad_(False)
        self.reward_model, self.reward_tokenizer = load_reward_model(reward_model_dir)
        self.reward_model.to(self.device).eval().requires_grad_(False)
        if config.gradient_checkpointing:
            self.policy.lm.gradient_checkpointing_enable()
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.kl_ctl = (AdaptiveKLController(config.init_kl_coef, config.target_kl, config.kl_horizon)
                       if config.adaptive_kl else FixedKLController(config.init_kl_coef))
        self.eos_id = self.tokenizer.eos_token_id
        self.end_ids = [i for i in {self.eos_id, self.tokenizer.convert_tokens_to_ids("<|end|>")} if isinstance(i, int) and i >= 0]

    def autocast(self):
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.config.bf16)

    @torch.no_grad()
    def rollout(self, prompts: Sequence[str]) -> Rollout:
        cfg = self.config
        enc = render_prompts(self.tokenizer, prompts).to(self.device)
        self.policy.eval()
        with self.autocast():
            sequences = self.policy.lm.generate(
                **enc, do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0, use_cache=True,
                max_new_tokens=cfg.max_new_tokens, eos_token_id=self.end_ids, pad_token_id=self.tokenizer.pad_token_id,
            )  # (B, P+N)
        P = enc["input_ids"].shape[1]
        response = sequences[:, P:]  # (B, N)
        is_end = torch.isin(response, torch.tensor(self.end_ids, device=response.device)).long()
        mask = ((is_end.cumsum(-1) - is_end) == 0).float()  # keep tokens up to and including the first end token
        attention_mask = torch.cat([enc["attention_mask"], mask.long()], dim=1)  # (B, P+N)
        with self.autocast():
            logits, values = self.policy(sequences, attention_mask)
            ref_logits = self.reference(input_ids=sequences, attention_mask=attention_mask,
                                        position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0)).logits
        logprobs = response_logprobs(logits[:, P - 1 : -1], response, cfg.temperature)  # (B, N)
        ref_logprobs = response_logprobs(ref_logits[:, P - 1 : -1], response, cfg.temperature)
        texts = self.tokenizer.batch_decode(response * mask.long() + self.tokenizer.pad_token_id * (1 - mask.long()),
                                            skip_special_tokens=True)
        scores = reward_scores(self.reward_model, self.reward_tokenizer, list(prompts), texts).to(self.device)
        return Rollout(sequences, attention_mask, mask, logprobs, ref_logprobs,
                       values[:, P - 1 : -1].float() * mask, scores, P)

    def step(self, batch: Rollout) -> dict[str, float]:
        """PPO epochs over one rollout batch; returns the iteration's logged statistics."""
        cfg = self.config
        scores = batch.scores
        rewards, kl = kl_penalized_rewards(scores, batch.logprobs, batch.ref_logprobs, batch.mask, self.kl_ctl.value)
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, batch.mask)
        advantages, returns = gae(rewards, batch.values, batch.mask, cfg.gamma, cfg.lam)
        advantages = masked_whiten(advantages, batch.mask)  # per-batch normalisation stabilises the step size
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clipfrac": [], "entropy": []}
        self.policy.train()
        B, P = len(scores), batch.prompt_len
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(B).split(cfg.mini_batch_size):
                with self.autocast():
                    logits, values = self.policy(batch.sequences[idx], batch.attention_mask[idx])
                logits = logits[:, P - 1 : -1].float()  # (b, N, V)
                logprobs = response_logprobs(logits, batch.sequences[idx, P:], cfg.temperature)
                m = batch.mask[idx]
                policy_loss, value_loss, clipfrac = ppo_losses(
                    logprobs, batch.logprobs[idx], advantages[idx], values[:, P - 1 : -1].float(),
                    batch.values[idx], returns[idx], m, cfg.cliprange, cfg.cliprange_value)
                loss = policy_loss + cfg.vf_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    probs = torch.softmax(logits / cfg.temperature, dim=-1)
                    entropy = masked_mean(-(probs * torch.log(probs.clamp_min(1e-12))).sum(-1), m)
                for k, v in zip(stats, (policy_loss, value_loss, clipfrac, entropy), strict=True):
                    stats[k].append(float(v.detach()))
        mean_kl = float(kl.sum(-1).mean())
        self.kl_ctl.update(mean_kl, B)
        return {"mean_reward": float(scores.mean()), "kl": mean_kl, "kl_coef": self.kl_ctl.value,
                "response_length": float(batch.mask.sum(-1).mean()),
                **{k: sum(v) / len(v) for k, v in stats.items()}}

    def train(self, prompts: Sequence[str], log: Callable[[int, dict], None] | None = None) -> list[dict]:
        if not prompts:
            raise ValueError("PPO got no prompts: the snapshot's training split has no prompt text")
        rng = random.Random(self.config.seed)
        order: list[str] = []
        history = []
        for iteration in range(self.config.num_iterations):
            batch_prompts = []
            while len(batch_prompts) < self.config.rollout_batch_size:
                if not order:
                    order = list(prompts)
                    rng.shuffle(order)
                batch_prompts.append(order.pop())
            stats = self.step(self.rollout(batch_prompts))
            if not all(math.isfinite(v) for v in stats.values()):
                raise FloatingPointError(f"PPO iteration {iteration} produced non-finite statistics {stats}: lower learning_rate")
            history.append({"iteration": iteration, **stats})
            logger.info("ppo iteration %d %s", iteration, {k: round(v, 4) for k, v in stats.items()})
            if log:
                log(iteration, stats)
        return history

    def save(self, model_dir: Path) -> None:
        self.policy.lm.save_pretrained(str(model_dir))
        self.tokenizer.save_pretrained(str(model_dir))
        torch.save(self.policy.value_head.state_dict(), Path(model_dir) / "value_head.pt")


def train_ppo(config: PPOConfig, train_rows, reward_model_dir: Path, model_dir: Path,
              log: Callable[[int, dict], None] | None = None) -> dict:
    if not config.model_name_or_path:
        raise ValueError("PPO recipe has no model.model_name_or_path: set it to the SFT chat model directory")
    trainer = PPOTrainer(config, config.model_name_or_path, reward_model_dir)
    prompts = list(dict.fromkeys(train_rows["prompt"]))
    history = trainer.train(prompts, log)
    trainer.save(model_dir)
    return {"history": history, "reward_first": history[0]["mean_reward"], "reward_last": history[-1]["mean_reward"],
            "kl_last": history[-1]["kl"]}
