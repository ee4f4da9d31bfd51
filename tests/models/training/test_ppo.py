import pytest
import torch
from datasets import Dataset

from models.training.config import PPOConfig, load_recipe
from models.training.data import split_by_sample_id
from models.training.ppo import AdaptiveKLController, gae, kl_penalized_rewards, ppo_losses, train_ppo
from tests.models.training.conftest import RECIPES


def test_gae_matches_hand_computation():
    # gamma=1, lam=0.5, V=0.5 everywhere, reward 1 at the end:
    # A2 = 1 - 0.5 = 0.5; A1 = (0 + 0.5 - 0.5) + 0.5*0.5 = 0.25; A0 = 0 + 0.5*0.25 = 0.125
    adv, ret = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]]), torch.ones(1, 3), 1.0, 0.5)
    assert torch.allclose(adv, torch.tensor([[0.125, 0.25, 0.5]]))
    assert torch.allclose(ret, torch.tensor([[0.625, 0.75, 1.0]]))
    # A padded last token: its value (0.9) must not leak back, and its advantage is 0.
    adv, _ = gae(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.9]]), torch.tensor([[1.0, 1.0, 0.0]]), 1.0, 0.5)
    assert torch.allclose(adv, torch.tensor([[0.25, 0.5, 0.0]]))


def test_clipped_losses_match_hand_computation():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 0.5]]))  # ratios 1.5, 0.5, 0.5
    adv = torch.tensor([[1.0, -1.0, 1.0]])
    # per token max(-A*r, -A*clip(r, 0.8, 1.2)): max(-1.5, -1.2) = -1.2; max(0.5, 0.8) = 0.8; max(-0.5, -0.8) = -0.5
    values = torch.tensor([[0.5, -0.1, 0.3]])
    returns = torch.tensor([[1.0, 0.0, 0.0]])
    # clipped values 0.2, -0.1, 0.2 -> max squared errors 0.64, 0.01, 0.09
    policy_loss, value_loss, clipfrac = ppo_losses(new, old, adv, values, torch.zeros(1, 3), returns, torch.ones(1, 3), 0.2, 0.2)
    assert policy_loss.item() == pytest.approx((-1.2 + 0.8 - 0.5) / 3)
    assert value_loss.item() == pytest.approx(0.5 * (0.64 + 0.01 + 0.09) / 3)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_kl_penalty_per_token_and_score_on_last_real_token():
    rewards, kl = kl_penalized_rewards(torch.tensor([2.0]), torch.tensor([[-1.0, -2.0, -3.0]]),
                                       torch.tensor([[-1.5, -2.0, -2.0]]), torch.tensor([[1.0, 1.0, 0.0]]), 0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 2.0, 0.0]]))


def test_adaptive_kl_controller_moves_toward_target():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(current_kl=12.0, n_steps=64)  # error clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10_000))
    ctl.update(current_kl=0.0, n_steps=64)
    assert ctl.value < 0.1 * (1 + 0.2 * 64 / 10_000)


@pytest.mark.slow
def test_ppo_raises_reward_with_bounded_kl(sft_policy, trained_reward_model, task_rows, tmp_path):
    config = load_recipe(RECIPES / "test" / "ppo.yaml", PPOConfig, output_dir=str(tmp_path / "trainer"),
                         model_name_or_path=str(sft_policy))
    train, _ = split_by_sample_id(Dataset.from_list(task_rows), config.eval_fraction)
    metrics = train_ppo(config, train, trained_reward_model, tmp_path / "policy")
    history = metrics["history"]
    first = sum(h["mean_reward"] for h in history[:5]) / 5
    last = sum(h["mean_reward"] for h in history[-5:]) / 5
    assert last > first + 1.0, [round(h["mean_reward"], 2) for h in history]
    assert max(h["kl"] for h in history) < 15.0, [round(h["kl"], 2) for h in history]
    for key in ("clipfrac", "value_loss", "entropy", "policy_loss", "kl_coef"):
        assert key in history[-1]
    assert (tmp_path / "policy" / "value_head.pt").is_file()
