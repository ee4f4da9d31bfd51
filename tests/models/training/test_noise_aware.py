"""models/training/noise_aware.py: per-row soft targets in the reward-model and DPO losses.

Each trainer is checked on one real batch from its own dataloader (so p_wrong survives TRL's column
removal and the collator): with p_wrong = 0 the loss is exactly the stock TRL trainer's, and with
p_wrong set it equals the soft-target loss computed by hand from the same model's scores.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from models.training.config import DPOStageConfig, RecipeError, RewardModelConfig, load_recipe
from models.training.data import SnapshotError, dpo_rows, tokenize_pairs, with_p_wrong
from models.training.noise_aware import (
    NoiseAwareDPOTrainer,
    NoiseAwareRewardTrainer,
    bounded_correction,
    bounded_loss,
    soft_target_correction,
    soft_target_loss,
)
from tests.models.training.conftest import RECIPES
from tests.models.training.synthetic import corpus, preference_rows

P_WRONG = [0.0, 0.1, 0.3, 0.45, 0.05, 0.2, 0.0, 0.25]


def _rows(p_wrong: list[float | None]) -> Dataset:
    rows = preference_rows(len(p_wrong), seed=3)
    return Dataset.from_list([{**r, "p_wrong": p} for r, p in zip(rows, p_wrong, strict=True)])


def _by_hand(z: list[float], p: list[float]) -> float:
    """mean of -(1 - p) log sigmoid(z) - p log sigmoid(-z), in plain floats."""

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    return sum(-(1 - pi) * log_sigmoid(zi) - pi * log_sigmoid(-zi) for zi, pi in zip(z, p, strict=True)) / len(z)


def test_soft_target_loss_is_the_plain_loss_plus_the_correction() -> None:
    z, p = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.1, 0.3, 0.0])
    assert soft_target_loss(z, p).item() == pytest.approx(_by_hand([1.0, -0.5, 2.0], [0.1, 0.3, 0.0]))
    plain = -torch.nn.functional.logsigmoid(z).mean()
    assert (plain + soft_target_correction(z, p)).item() == pytest.approx(soft_target_loss(z, p).item(), abs=1e-6)


def _bounded_by_hand(z: list[float], p: list[float]) -> float:
    """mean of -log((1 - p) sigmoid(z) + p sigmoid(-z)), in plain floats."""

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    return sum(-math.log((1 - pi) * sigmoid(zi) + pi * sigmoid(-zi)) for zi, pi in zip(z, p, strict=True)) / len(z)


def test_bounded_loss_is_the_flip_likelihood_and_trl_at_zero() -> None:
    z, p = torch.tensor([1.0, -0.5, 2.0, -3.0]), torch.tensor([0.1, 0.3, 0.0, 0.2])
    # By hand, row 1: -log(0.9 * sigmoid(1) + 0.1 * sigmoid(-1)) = -log(0.9 * 0.731059 + 0.1 * 0.268941) = 0.378560
    assert _bounded_by_hand([1.0], [0.1]) == pytest.approx(0.378560, abs=1e-6)
    assert bounded_loss(z, p).item() == pytest.approx(_bounded_by_hand(z.tolist(), p.tolist()), rel=1e-6)
    zero = torch.zeros_like(z)
    assert torch.equal(bounded_correction(z, zero), torch.tensor(0.0))
    assert torch.equal(bounded_loss(z, zero), -torch.nn.functional.logsigmoid(z).mean())
    # The bound: a row the model is sure is flipped costs at most -log p, where soft targets grow without limit.
    far = torch.tensor([-50.0])
    assert bounded_loss(far, torch.tensor([0.2])).item() == pytest.approx(-math.log(0.2), rel=1e-6)
    z.requires_grad_(True)
    bounded_loss(z, zero).backward()
    assert torch.isfinite(z.grad).all()  # log(0) = -inf in the logaddexp leaves no NaN in the gradient


def test_noise_loss_takes_soft_or_bounded_only(tiny_rm, tmp_path) -> None:
    with pytest.raises(RecipeError, match="training.noise_loss is 'robust': allowed values are soft, bounded"):
        load_recipe(RECIPES / "test" / "reward_model.yaml", RewardModelConfig, output_dir=str(tmp_path / "t"),
                    model_name_or_path=str(tiny_rm), noise_aware=True, noise_loss="robust")  # fmt: skip


def test_p_wrong_column_is_checked_and_null_means_certain() -> None:
    assert with_p_wrong(_rows([None, 0.2]))["p_wrong"] == [0.0, 0.2]
    with pytest.raises(SnapshotError, match=r"sample 'syn-3-00001': field 'p_wrong' is 1.5"):
        with_p_wrong(_rows([0.1, 1.5]))
    with pytest.raises(SnapshotError, match="no 'p_wrong' column"):
        with_p_wrong(Dataset.from_list(preference_rows(2)))


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from models.tiny import build_tiny_reward_model

    return build_tiny_reward_model(tmp_path_factory.mktemp("na-rm"), corpus(), hidden_size=64, layers=2)


def test_reward_loss_is_trl_at_zero_and_soft_bradley_terry_otherwise(tiny_rm, tmp_path) -> None:
    from trl import RewardTrainer

    from models.training.loading import load_reward_model

    model, tokenizer = load_reward_model(str(tiny_rm))
    config = load_recipe(RECIPES / "test" / "reward_model.yaml", RewardModelConfig, output_dir=str(tmp_path / "t"),
                         model_name_or_path=str(tiny_rm), noise_aware=True, max_steps=2, seed=1)  # fmt: skip
    rows = tokenize_pairs(with_p_wrong(_rows(P_WRONG)), tokenizer, config.max_length)
    aware = NoiseAwareRewardTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)
    stock = RewardTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)
    batch = next(iter(aware.get_train_dataloader()))
    assert "p_wrong" in batch and "p_wrong" not in next(iter(stock.get_train_dataloader()))
    model.eval()
    with torch.no_grad():
        plain = {k: v for k, v in batch.items() if k != "p_wrong"}
        trl_loss = stock.compute_loss(model, dict(plain))
        zero = aware.compute_loss(model, {**plain, "p_wrong": torch.zeros_like(batch["p_wrong"])})
        assert torch.equal(zero, trl_loss)
        scores = model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"]).logits.squeeze(-1)
        chosen, rejected = scores.chunk(2)
        expected = _by_hand((chosen - rejected).tolist(), batch["p_wrong"].tolist())
        assert aware.compute_loss(model, dict(batch)).item() == pytest.approx(expected, rel=1e-5)
        bounded_config = load_recipe(RECIPES / "test" / "reward_model.yaml", RewardModelConfig,
                                     output_dir=str(tmp_path / "b"), model_name_or_path=str(tiny_rm), noise_aware=True,
                                     noise_loss="bounded", max_steps=2, seed=1)  # fmt: skip
        bounded = NoiseAwareRewardTrainer(model=model, args=bounded_config, train_dataset=rows,
                                          processing_class=tokenizer)  # fmt: skip
        zero_bounded = bounded.compute_loss(model, {**plain, "p_wrong": torch.zeros_like(batch["p_wrong"])})
        assert torch.equal(zero_bounded, trl_loss)
        # Near margin 0 soft and bounded agree to first order: widen the margins so the check can tell them apart.
        model.score.weight.mul_(200.0)
        scores = model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"]).logits.squeeze(-1)
        chosen, rejected = scores.chunk(2)
        margins, p = (chosen - rejected).tolist(), batch["p_wrong"].tolist()
        assert bounded.compute_loss(model, dict(batch)).item() == pytest.approx(_bounded_by_hand(margins, p), rel=1e-5)
        assert _bounded_by_hand(margins, p) != pytest.approx(_by_hand(margins, p), rel=1e-2)
        model.score.weight.div_(200.0)
    model.train()
    assert math.isfinite(aware.train().training_loss)  # the whole path: dataloader, collator, loss, backward


def test_the_recipe_switch_picks_the_trainer_and_refuses_rows_without_p_wrong(tiny_rm, tmp_path) -> None:
    from models.training.loading import load_reward_model
    from models.training.reward import build_reward_trainer

    model, tokenizer = load_reward_model(str(tiny_rm))
    config = load_recipe(RECIPES / "test" / "reward_model.yaml", RewardModelConfig, output_dir=str(tmp_path / "t"),
                         model_name_or_path=str(tiny_rm), noise_aware=True)  # fmt: skip
    assert isinstance(build_reward_trainer(config, _rows(P_WRONG), model, tokenizer), NoiseAwareRewardTrainer)
    with pytest.raises(SnapshotError, match="no 'p_wrong' column"):
        build_reward_trainer(config, Dataset.from_list(preference_rows(4)), model, tokenizer)
    rows = tokenize_pairs(Dataset.from_list(preference_rows(4)), tokenizer, config.max_length)
    with pytest.raises(ValueError, match="needs a 'p_wrong' column"):
        NoiseAwareRewardTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)


def test_dpo_loss_is_trl_at_zero_and_per_row_conservative_dpo_otherwise(tmp_path) -> None:
    from trl import DPOTrainer

    from models.tiny import build_tiny_causal_lm
    from models.training.loading import load_chat_tokenizer

    policy = tmp_path / "policy"
    build_tiny_causal_lm(policy, corpus(), hidden_size=64, layers=1)
    config = load_recipe(RECIPES / "test" / "dpo.yaml", DPOStageConfig, output_dir=str(tmp_path / "t"),
                         model_name_or_path=str(policy), noise_aware=True, per_device_train_batch_size=8)  # fmt: skip
    tokenizer = load_chat_tokenizer(str(policy))
    rows = dpo_rows(with_p_wrong(_rows(P_WRONG)))
    aware = NoiseAwareDPOTrainer(model=str(policy), args=config, train_dataset=rows, processing_class=tokenizer)
    # The same weights loaded again: TRL patches the model it is given, so each trainer gets its own copy.
    stock = DPOTrainer(model=str(policy), args=config, train_dataset=rows, processing_class=tokenizer)
    batch = next(iter(aware.get_train_dataloader()))
    plain = {k: v for k, v in batch.items() if k != "p_wrong"}
    with torch.no_grad():
        # Move both policies off the reference, identically: at the reference every margin is 0.
        generator = torch.Generator().manual_seed(0)
        for mine, theirs in zip(aware.model.parameters(), stock.model.parameters(), strict=True):
            step = 0.5 * torch.randn(mine.shape, generator=generator)
            mine.add_(step)
            theirs.add_(step)
        trl_loss = stock.compute_loss(stock.model, dict(plain))
        zero = aware.compute_loss(aware.model, {**plain, "p_wrong": torch.zeros_like(batch["p_wrong"])})
        assert torch.equal(zero, trl_loss)
        aware_loss = aware.compute_loss(aware.model, dict(batch)).item()
        # x_i = beta * (log-ratio margin) of each row alone: TRL's reward margin metric of a one-row batch.
        margins = []
        for i in range(len(P_WRONG)):
            stock.compute_loss(stock.model, {k: v[i : i + 1] if k.endswith("logps") else v[[i, i + len(P_WRONG)]]
                                             for k, v in plain.items()})  # fmt: skip
            margins.append(stock._metrics["train" if stock.model.training else "eval"]["rewards/margins"][-1])
    assert aware_loss == pytest.approx(_by_hand(margins, batch["p_wrong"].tolist()), rel=1e-4)
    assert aware_loss != pytest.approx(trl_loss.item(), rel=1e-4)  # the smoothing changed something


def test_dpo_refuses_losses_it_cannot_smooth(tmp_path) -> None:
    from models.tiny import build_tiny_causal_lm
    from models.training.loading import load_chat_tokenizer

    policy = tmp_path / "policy"
    build_tiny_causal_lm(policy, corpus(), hidden_size=64, layers=1)
    config = load_recipe(RECIPES / "test" / "dpo.yaml", DPOStageConfig, output_dir=str(tmp_path / "t"),
                         model_name_or_path=str(policy), noise_aware=True, loss_type=["ipo"])  # fmt: skip
    with pytest.raises(ValueError, match="smooths the text 'sigmoid' loss only"):
        NoiseAwareDPOTrainer(model=str(policy), args=config, train_dataset=dpo_rows(with_p_wrong(_rows(P_WRONG))),
                             processing_class=load_chat_tokenizer(str(policy)))  # fmt: skip
    with pytest.raises(RecipeError, match="noise-aware DPO has the soft loss only"):  # before any model loads
        load_recipe(RECIPES / "test" / "dpo.yaml", DPOStageConfig, output_dir=str(tmp_path / "b"),
                    model_name_or_path=str(policy), noise_aware=True, noise_loss="bounded")  # fmt: skip
