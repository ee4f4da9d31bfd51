"""Noise-aware preference losses: each row's ``p_wrong`` (labeling/label_risk.py) softens its own target.

Reward model: a Bradley-Terry loss with soft targets, 1 - p_wrong for "chosen beats rejected":

    loss_i = -(1 - p_i) log sigmoid(d_i) - p_i log sigmoid(-d_i),   d_i = r(chosen_i) - r(rejected_i)

DPO: conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"), whose label-smoothing
eps is each row's own p_wrong instead of one global value, with x_i = beta * (policy - reference
log-ratio margin):

    loss_i = -(1 - p_i) log sigmoid(x_i) - p_i log sigmoid(-x_i)

Bounded (reward model only, ``training.noise_loss: bounded``): the likelihood of the observed label when it
was flipped with probability p_i,

    loss_i = -log((1 - p_i) sigmoid(d_i) + p_i sigmoid(-d_i))

whose loss on a row the model believes flipped is bounded by -log p_i, so a flipped pair can be
outvoted instead of memorised (soft targets keep pulling it towards a finite wrong margin).
In benchmarks/noise_aware.py soft targets cost a flexible reward model 5.6 points and bounded gained 6.5;
on the HH file (a linear head) neither gained.

The soft losses are TRL's own loss plus one term: log sigmoid(z) - log sigmoid(-z) = z, so
loss_i = -log sigmoid(z_i) + p_i * z_i. Each subclass lets TRL compute its loss (and metrics)
and adds mean(p_i * z_i) (the bounded loss adds its own difference to -log sigmoid): with every
p_wrong = 0 either is exactly TRL's loss. The row's p_wrong
travels from the dataset to the loss in the batch: the collators add it and the trainers keep
the column (TRL's ``remove_unused_columns`` drops what the signature does not name).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from trl import DPOTrainer, RewardTrainer
from trl.trainer import dpo_trainer, reward_trainer

P_WRONG = "p_wrong"


def soft_target_correction(z: torch.Tensor, p_wrong: torch.Tensor) -> torch.Tensor:
    """mean(p * z): added to mean(-log sigmoid(z)) it gives the soft-target loss at targets 1 - p."""
    return (p_wrong.to(z.dtype) * z).mean()  # (B,) -> ()


def soft_target_loss(z: torch.Tensor, p_wrong: torch.Tensor) -> torch.Tensor:
    """The soft-target logistic loss written out, for tests and benchmarks (the trainers use the correction)."""
    p = p_wrong.to(z.dtype)
    return (-(1 - p) * F.logsigmoid(z) - p * F.logsigmoid(-z)).mean()


def bounded_loss(z: torch.Tensor, p_wrong: torch.Tensor) -> torch.Tensor:
    """mean of -log((1 - p) sigmoid(z) + p sigmoid(-z)): the label's likelihood under a flip with probability p."""
    p = p_wrong.to(z.dtype)
    return -torch.logaddexp(torch.log1p(-p) + F.logsigmoid(z), torch.log(p) + F.logsigmoid(-z)).mean()


def bounded_correction(z: torch.Tensor, p_wrong: torch.Tensor) -> torch.Tensor:
    """bounded_loss minus mean(-log sigmoid(z)): added to TRL's Bradley-Terry loss it gives the bounded loss
    (exactly 0 at p = 0: log(0) = -inf drops out of the logaddexp)."""
    return bounded_loss(z, p_wrong) + F.logsigmoid(z).mean()


CORRECTIONS = {"soft": soft_target_correction, "bounded": bounded_correction}


def _with_p_wrong(collator_cls: type) -> type:
    """A subclass of a TRL preference collator that also stacks each example's p_wrong, shape (B,)."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collator_cls.torch_call(self, examples)
        batch[P_WRONG] = torch.tensor([float(e[P_WRONG]) for e in examples], dtype=torch.float)
        return batch

    subclass = type(f"{collator_cls.__name__}WithPWrong", (collator_cls,), {"torch_call": torch_call})
    return dataclasses.dataclass(subclass)


RewardCollatorWithPWrong = _with_p_wrong(reward_trainer.DataCollatorForPreference)
DPOCollatorWithPWrong = _with_p_wrong(dpo_trainer.DataCollatorForPreference)


def _swap_collator(collator: Any, stock: type, with_p_wrong: type) -> Any:
    if type(collator) is not stock:
        raise ValueError(
            f"noise-aware training needs TRL's own {stock.__name__} (it adds p_wrong to it); got "
            f"{type(collator).__name__}: drop the data_collator argument or add p_wrong to your collator's batch"
        )
    return with_p_wrong(**{f.name: getattr(collator, f.name) for f in dataclasses.fields(collator)})


def _require_p_wrong(dataset: Any) -> None:
    if dataset is not None and P_WRONG not in (dataset.column_names or []):
        raise ValueError(
            f"noise-aware training needs a {P_WRONG!r} column; the training rows have {dataset.column_names}: "
            "export the snapshot again (labeling.export adds it) or set training.noise_aware: false"
        )


class NoiseAwareRewardTrainer(RewardTrainer):
    """RewardTrainer whose Bradley-Terry loss uses each row's p_wrong: soft target 1 - p_wrong, or the
    bounded flip likelihood (``args.noise_loss``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        noise_loss = getattr(self.args, "noise_loss", "soft")  # a plain RewardConfig has no such field
        if noise_loss not in CORRECTIONS:
            raise ValueError(f"noise_loss is {noise_loss!r}: allowed values are {', '.join(CORRECTIONS)}")
        self._noise_correction = CORRECTIONS[noise_loss]
        _require_p_wrong(self.train_dataset)
        stock = reward_trainer.DataCollatorForPreference
        self.data_collator = _swap_collator(self.data_collator, stock, RewardCollatorWithPWrong)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if P_WRONG not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, P_WRONG]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        p_wrong = inputs.pop(P_WRONG, None)  # not a model input
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if p_wrong is not None:
            rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)  # (B,), (B,)
            loss = loss + self._noise_correction(rewards_chosen - rewards_rejected, p_wrong.to(rewards_chosen.device))
        return (loss, outputs) if return_outputs else loss


class _LogsigmoidArguments(TorchFunctionMode):
    """Records every tensor passed to F.logsigmoid while active (PyTorch's documented function hook).

    TRL 1.16's DPO computes the sigmoid loss as F.logsigmoid(beta * delta) inside one long method
    and returns only its mean; the per-row argument x_i is what per-row smoothing needs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.logsigmoid and args:
            self.seen.append(args[0])
        return func(*args, **(kwargs or {}))


class NoiseAwareDPOTrainer(DPOTrainer):
    """DPOTrainer with per-row conservative DPO: the sigmoid loss smoothed by each row's p_wrong."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # noise_loss: bounded is refused at recipe load (DPOStageConfig)
        if list(self.loss_types) != ["sigmoid"] or self.args.use_weighting or self._is_vision_dataset:
            raise ValueError(
                f"noise-aware DPO smooths the text 'sigmoid' loss only; this run has loss_type={self.loss_types}, "
                f"use_weighting={self.args.use_weighting}: set training.loss_type: sigmoid and use_weighting: false, "
                "or training.noise_aware: false"
            )
        _require_p_wrong(self.train_dataset)
        stock = dpo_trainer.DataCollatorForPreference
        self.data_collator = _swap_collator(self.data_collator, stock, DPOCollatorWithPWrong)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if P_WRONG not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, P_WRONG]

    def _compute_loss(self, model, inputs, return_outputs):
        p_wrong = inputs.pop(P_WRONG, None)  # not a model input
        if p_wrong is None:
            return super()._compute_loss(model, inputs, return_outputs)
        with _LogsigmoidArguments() as recorder:
            result = super()._compute_loss(model, inputs, return_outputs)
        rows = [x for x in recorder.seen if x.shape == p_wrong.shape]
        if len(rows) != 1:
            raise RuntimeError(
                f"noise-aware DPO expected one per-row logsigmoid in TRL's sigmoid loss, found {len(rows)}: "
                "this TRL version computes it differently; pin trl 1.16 or set training.noise_aware: false"
            )
        loss, outputs = result if return_outputs else (result, None)
        loss = loss + self.loss_weights[0] * soft_target_correction(rows[0], p_wrong.to(rows[0].device))
        return (loss, outputs) if return_outputs else loss
