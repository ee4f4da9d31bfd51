"""Does p_wrong pay? Noise-aware against plain reward models, on labels whose noise differs by source (issue 16).

    OMP_NUM_THREADS=1 python benchmarks/noise_aware.py --seeds 10 --trainer-seeds 5 --out bench-noise-aware

Two data sets, each over ``--seeds`` seeds; the figures are clean held-out pairwise accuracy, mean and
standard deviation, and the paired difference (noise-aware minus plain) with the seeds it won.

1. **Generated cascade.** Pairs of feature vectors with a known true reward (linear in 16 features).
   A noisy AI labeler routes its confident pairs to a noisy judge; where they agree the judge's label
   is accepted, everything else goes to humans (one annotator, or three), who err more on close
   pairs. So the flip rate differs by source and by confidence, as in a real cascade. ``p_wrong`` is
   *estimated* as juryflow estimates it (labeling/label_risk.py): from a random 10 % audit with
   careful labels, and from annotator overlap. The reward model (a small MLP, and a linear one) is
   trained full-batch three times: the plain Bradley-Terry loss, soft targets 1 - p_wrong, and the
   bounded flip likelihood (models/training/noise_aware.soft_target_loss and bounded_loss, the
   functions the noise-aware trainer's ``noise_loss: soft | bounded`` uses); accuracy is
   against the true preference on fresh pairs.
2. **HH-RLHF harmless (shared file).** MiniLM pair features (the embedding labeler's), split in
   halves per seed. In the training half 30 % keep the crowd label (p_wrong 0: the crowd is the
   reference); the rest get simulated AI labels, the crowd label flipped with probability 1 - c for
   a simulated judge confidence c ~ U(0.55, 1); p_wrong is estimated from a 15 % audit of them. A
   linear head (the embedding labeler's form) is fitted plain, soft (estimated and true flip
   probabilities) and bounded; accuracy is against the crowd labels of the other half.
3. **The trainers themselves** (``--trainer-seeds``): RewardTrainer against NoiseAwareRewardTrainer
   (``noise_loss: soft`` and ``bounded``) on the tiny reward model's word task (models/tiny.py),
   labels flipped at 5 / 25 / 10 % for judge / human / human_over_judge rows, p_wrong per source
   from a 20 % audit.

``noise_bounded`` is -log((1 - p) sigmoid(d) + p sigmoid(-d)), the likelihood of a label flipped with
probability p_wrong: its loss on a row it believes flipped is bounded by -log p, where soft targets
keep pulling that row towards its wrong label.

Measured (--seeds 10, then --seeds 0 --trainer-seeds 5; accuracy mean +- sd, arm minus plain, paired):
- cascade, MLP: plain 0.844 +- 0.023; soft 0.788 (-0.056 +- 0.014, 0/10 wins); bounded 0.909
  (+0.065 +- 0.012, 10/10). Flip rates judge 5 %, majority 14 %, single 20 %; mean p_wrong 4 %,
  13 %, 22 % (seed 0).
- cascade, linear: plain 0.971 +- 0.007; soft +0.003 +- 0.002 (10/10); bounded -0.001 +- 0.004 (4/10).
- HH, linear head: plain 0.592 +- 0.019; soft -0.003 +- 0.008 (3/10); soft with the true p
  -0.002 +- 0.008 (3/10); bounded -0.008 +- 0.017 (2/10).
- tiny RewardTrainer: plain 0.826 +- 0.200; soft 0.899 +- 0.076 (+0.073 +- 0.172, 3/5); bounded
  0.744 +- 0.220 (-0.082 +- 0.189, 2/5): two bounded runs stayed at chance (0.50, 0.53), as did one
  plain run (0.48): these short runs are too unstable to tell either way.
So neither loss pays on HH: there the head is linear and under-fitted (59 % agreement), so flipped
pairs cannot be memorised and there is nothing for a bound to stop. Bounded pays where a flexible
model would memorise flips (+6.5 points on the MLP, 10/10); soft targets hurt there. Neither is shown
to pay with the real trainer or on HH, so ``training.noise_aware`` stays off by default.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labeling.label_risk import LabelRisk, annotator_risk, fit_judge_risk  # noqa: E402
from labeling.schemas import FinalLabel, LabelSource  # noqa: E402
from models.training.noise_aware import bounded_loss, soft_target_loss  # noqa: E402

HH_DEV = REPO.parent / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl.gz"
DIM = 16
AUDIT_RATE = 0.10


# -- 1. generated cascade -------------------------------------------------------------------------


def cascade_labels(gap: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Labels (1 = A preferred), their source and estimated p_wrong for pairs whose true reward gap is ``gap``."""
    n = gap.size
    truth = gap > 0
    labeler = gap + rng.normal(0, 1.2, n)  # the AI labeler's score
    judge = gap + rng.normal(0, 1.0, n)  # the judge's, with errors of its own
    judge_conf = 1 / (1 + np.exp(-np.abs(judge)))
    to_judge = np.abs(labeler) >= np.quantile(np.abs(labeler), 0.45)  # the confident 55 %
    accepted = to_judge & ((judge > 0) == (labeler > 0))
    eps = 0.08 + 0.25 * np.exp(-np.abs(gap))  # annotators err more on close pairs
    n_votes = np.where(rng.random(n) < 0.3, 3, 1)
    wrong_votes = rng.binomial(n_votes, eps)
    human_says_truth = wrong_votes * 2 < n_votes
    label = np.where(accepted, judge > 0, np.where(human_says_truth, truth, ~truth))
    top = np.maximum(wrong_votes, n_votes - wrong_votes)

    # p_wrong as juryflow estimates it: accepted audits (careful labels) and annotator overlap.
    audited = rng.random(n) < AUDIT_RATE
    curve = fit_judge_risk(judge_conf[audited & accepted], ((judge > 0) != truth)[audited & accepted])
    overlap = ~accepted & (n_votes == 1) & (rng.random(n) < AUDIT_RATE)  # a second annotator on 10 %
    second_wrong = rng.random(n) < eps
    units = [["A"] * (v - w) + ["B"] * w for v, w in zip(n_votes[n_votes == 3], wrong_votes[n_votes == 3])]
    pairs_of_votes = zip(wrong_votes[overlap] > 0, second_wrong[overlap], strict=True)
    units += [["B" if w1 else "A", "B" if w2 else "A"] for w1, w2 in pairs_of_votes]
    risk = LabelRisk(judge=curve, annotator=annotator_risk(units))
    def final(i: int) -> FinalLabel:
        if accepted[i]:
            return FinalLabel(sample_id=str(i), preferred="A", source=LabelSource.judge, confidence=judge_conf[i])
        return FinalLabel(sample_id=str(i), preferred="A", source=LabelSource.human,
                          confidence=top[i] / n_votes[i], n_annotators=int(n_votes[i]))  # fmt: skip

    p_wrong = np.array([risk.p_wrong(final(i)) for i in range(n)], dtype=float)
    source = np.where(accepted, "judge", np.where(n_votes == 3, "majority of 3", "one annotator"))
    return {"label": label, "p_wrong": p_wrong, "source": source, "wrong": label != truth}


LOSSES = {"plain": soft_target_loss, "noise_aware": soft_target_loss, "noise_bounded": bounded_loss}


def train_reward(xa, xb, label, p_wrong, seed: int, kind: str, loss_fn) -> torch.nn.Module:
    """A reward model on (chosen, rejected) features, full batch, 400 Adam steps (long enough to fit flipped
    labels: where noise costs). ``kind`` "mlp" can memorise (as real reward models can); "linear" is
    the true model's own form."""
    torch.manual_seed(seed)
    if kind == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(DIM, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    else:
        model = torch.nn.Linear(DIM, 1, bias=False)
    chosen = torch.tensor(np.where(label[:, None], xa, xb), dtype=torch.float)  # (N, D)
    rejected = torch.tensor(np.where(label[:, None], xb, xa), dtype=torch.float)  # (N, D)
    p = torch.tensor(p_wrong, dtype=torch.float)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        margin = (model(chosen) - model(rejected)).squeeze(-1)  # (N,)
        loss_fn(margin, p).backward()
        opt.step()
    return model


def run_cascade(seed: int, n_train: int, n_test: int) -> dict:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, DIM) / math.sqrt(DIM)  # |w| ~ 1: true gaps have sd ~ 1.4, comparable to the noise

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xa, xb = rng.normal(0, 1, (n, DIM)), rng.normal(0, 1, (n, DIM))
        return xa, xb, (xa - xb) @ w

    xa, xb, gap = pairs(n_train)
    labels = cascade_labels(gap, rng)
    ta, tb, tgap = pairs(n_test)
    sources = np.unique(labels["source"])
    out = {"flip_rate": {s: float(labels["wrong"][labels["source"] == s].mean()) for s in sources},
           "mean_p_wrong": {s: float(labels["p_wrong"][labels["source"] == s].mean()) for s in sources}}  # fmt: skip
    for kind in ("mlp", "linear"):
        for arm, loss_fn in LOSSES.items():
            p = np.zeros(n_train) if arm == "plain" else labels["p_wrong"]
            model = train_reward(xa, xb, labels["label"], p, seed, kind, loss_fn)
            with torch.no_grad():
                score = model(torch.tensor(ta, dtype=torch.float)) - model(torch.tensor(tb, dtype=torch.float))
            out[f"{kind}_{arm}"] = float(((score.squeeze(-1).numpy() > 0) == (tgap > 0)).mean())
    return out


# -- 2. HH-RLHF harmless with simulated AI labels -------------------------------------------------


def hh_features(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) odd pair features and (N,) crowd labels (1 = A preferred), encoded once and cached."""
    if cache.is_file():
        data = np.load(cache)
        return data["x"], data["y"]
    from labeling.ingest import load_records, parse_records
    from labeling.settings import IngestSettings
    from models.labelers.embedding import load_encoder, pair_features

    samples, _ = parse_records(load_records(HH_DEV), IngestSettings())
    x = pair_features(load_encoder(), samples)
    y = np.array([s.reference_label == "A" for s in samples])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return x, y


def fit_linear_head(x: np.ndarray, label: np.ndarray, p_wrong: np.ndarray, loss_fn, c: float = 0.05) -> np.ndarray:
    """The embedding head's form (no intercept, odd features), L2 as sklearn's C, fitted by L-BFGS."""
    xs = torch.tensor(np.where(label[:, None], x, -x), dtype=torch.double)  # chosen-minus-rejected features
    p = torch.tensor(p_wrong, dtype=torch.double)
    w = torch.zeros(x.shape[1], dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(xs @ w, p) + (w @ w) / (2 * c * len(xs))
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def run_hh(seed: int, x: np.ndarray, y: np.ndarray, human_share: float = 0.3) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2 :]
    is_ai = rng.random(train.size) >= human_share
    conf = rng.uniform(0.55, 1.0, train.size)
    flip = is_ai & (rng.random(train.size) < 1 - conf)
    label = np.where(flip, ~y[train], y[train])
    audited = is_ai & (rng.random(train.size) < 0.15)
    curve = fit_judge_risk(conf[audited], flip[audited])
    p_est = np.where(is_ai, [curve.at(float(c)) for c in conf], 0.0)
    out = {"ai_flip_rate": float(flip[is_ai].mean()), "mean_p_wrong_ai": float(p_est[is_ai].mean())}
    true_p = np.where(is_ai, 1 - conf, 0.0)
    arms = {"plain": (np.zeros(train.size), soft_target_loss), "noise_aware": (p_est, soft_target_loss),
            "noise_aware_true_p": (true_p, soft_target_loss), "noise_bounded": (p_est, bounded_loss)}  # fmt: skip
    for name, (p, loss_fn) in arms.items():
        w = fit_linear_head(x[train], label, p, loss_fn)
        out[name] = float(((x[test] @ w > 0) == y[test]).mean())
    return out


# -- 3. the real trainers on a tiny reward model ----------------------------------------------------

# (share of rows, flip rate) by source: as in a cascade, the judge's accepted labels are the cleanest.
TRAINER_SOURCES = {"judge": (0.5, 0.05), "human": (0.35, 0.25), "human_over_judge": (0.15, 0.10)}
# (arm, training.noise_aware, training.noise_loss)
TRAINER_ARMS = (("plain", False, "soft"), ("noise_aware", True, "soft"), ("noise_bounded", True, "bounded"))


def run_trainer(seed: int, base_model: Path, work: Path, n_train: int = 400, epochs: int = 8) -> dict:
    """RewardTrainer against NoiseAwareRewardTrainer (training.noise_aware) on the tiny model's word task,
    labels flipped by source; p_wrong per source from a 20 % audit (Jeffreys); clean held-out pairs."""
    from datasets import Dataset

    from labeling.label_risk import jeffreys_rate
    from models.training.config import RewardModelConfig, load_recipe
    from models.training.reward import train_reward_model
    from tests.models.training.synthetic import preference_rows

    rng = np.random.default_rng(seed)
    rows = preference_rows(n_train, seed=seed)
    names = list(TRAINER_SOURCES)
    source = rng.choice(names, size=n_train, p=[TRAINER_SOURCES[k][0] for k in names])
    flip = rng.random(n_train) < np.array([TRAINER_SOURCES[k][1] for k in source])
    audited = rng.random(n_train) < 0.2
    p_by_source = {k: jeffreys_rate(int((flip & audited & (source == k)).sum()), int((audited & (source == k)).sum()))
                   for k in names}  # fmt: skip
    for row, src, flipped in zip(rows, source, flip, strict=True):
        if flipped:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
        row["source"], row["p_wrong"] = str(src), p_by_source[str(src)]
    held_out = Dataset.from_list(preference_rows(300, seed=seed + 1000))
    out = {"flip_rate": float(flip.mean())}
    for arm, noise_aware, noise_loss in TRAINER_ARMS:
        config = load_recipe(REPO / "recipes" / "test" / "reward_model.yaml", RewardModelConfig,
                             output_dir=str(work / f"{seed}-{arm}-trainer"), model_name_or_path=str(base_model),
                             noise_aware=noise_aware, noise_loss=noise_loss, num_train_epochs=epochs,
                             seed=seed)  # fmt: skip
        metrics = train_reward_model(config, Dataset.from_list(rows), held_out, work / f"{seed}-{arm}")
        out[arm] = metrics["heldout"]["accuracy"]
    return out


# -- report ---------------------------------------------------------------------------------------


def summarize(runs: list[dict], arms: tuple[str, ...]) -> dict:
    """Mean and sd per arm; each later arm also minus the first (the plain one), paired by seed."""
    def stats(values: list[float]) -> dict:
        return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    summary = {arm: stats([r[arm] for r in runs]) for arm in arms}
    for arm in arms[1:]:
        diff = [r[arm] - r[arms[0]] for r in runs]
        wins, ties = sum(d > 0 for d in diff), sum(d == 0 for d in diff)
        summary[f"{arm}_minus_plain"] = {**stats(diff), "wins": wins, "ties": ties}
    return summary


def table(title: str, summary: dict, arms: tuple[str, ...], n: int) -> str:
    lines = [f"{title} ({n} seeds)", "| arm | accuracy mean | sd | minus plain | sd | wins |", "|---" * 6 + "|"]
    for arm in arms:
        s, d = summary[arm], summary.get(f"{arm}_minus_plain")
        diff = f"{d['mean']:+.4f} | {d['sd']:.4f} | {d['wins']}/{n}" if d else "| |"
        lines.append(f"| {arm} | {s['mean']:.4f} | {s['sd']:.4f} | {diff} |")
    return "\n".join(lines)


def cascade_part(seeds: int, n_train: int) -> dict:
    runs = [run_cascade(seed, n_train, 4000) for seed in range(seeds)]
    part: dict = {"runs": runs}
    for kind in ("mlp", "linear"):
        arms = tuple(f"{kind}_{arm}" for arm in LOSSES)
        part[f"summary_{kind}"] = summarize(runs, arms)
        title = f"generated cascade, {kind} reward model, clean held-out accuracy"
        print(table(title, part[f"summary_{kind}"], arms, seeds))
    print("seed 0 flip rate by source:", json.dumps(runs[0]["flip_rate"]))
    print("seed 0 mean p_wrong by source:", json.dumps(runs[0]["mean_p_wrong"]))
    return part


def hh_part(seeds: int, out: Path) -> dict | None:
    if not HH_DEV.is_file():
        print(f"HH-RLHF dev file not found at {HH_DEV}: skipping the HH part (it lives in ../shared/data)")
        return None
    x, y = hh_features(out / "hh_features.npz")
    runs = [run_hh(seed, x, y) for seed in range(seeds)]
    arms = ("plain", "noise_aware", "noise_aware_true_p", "noise_bounded")
    part = {"runs": runs, "summary": summarize(runs, arms)}
    print(table("HH-RLHF harmless, held-out agreement with the crowd", part["summary"], arms, seeds))
    first = runs[0]
    print(f"seed 0: simulated AI flip rate {first['ai_flip_rate']:.3f}, mean p_wrong {first['mean_p_wrong_ai']:.3f}")
    return part


def trainer_part(seeds: int, work: Path) -> dict:
    from models.tiny import build_tiny_reward_model
    from tests.models.training.synthetic import corpus

    base = build_tiny_reward_model(work / "base", corpus(), hidden_size=64, layers=2)
    runs = [run_trainer(seed, base, work) for seed in range(seeds)]
    arms = tuple(arm for arm, _, _ in TRAINER_ARMS)
    part = {"runs": runs, "summary": summarize(runs, arms)}
    title = "tiny reward model, RewardTrainer vs NoiseAwareRewardTrainer (soft, bounded), clean held-out accuracy"
    print(table(title, part["summary"], arms, seeds))
    return part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per data set (at least 5; 0 skips both)")
    parser.add_argument("--n-train", type=int, default=1500, help="generated training pairs")
    parser.add_argument("--out", type=Path, default=Path("bench-noise-aware"))
    parser.add_argument("--skip-hh", action="store_true", help="leave out the HH part")
    parser.add_argument("--trainer-seeds", type=int, default=0, help="also run the real trainers on a tiny model")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report: dict = {}
    if args.seeds:
        report["cascade"] = cascade_part(args.seeds, args.n_train)
        if not args.skip_hh:
            report["hh"] = hh_part(args.seeds, args.out)
    if args.trainer_seeds:
        report["trainer"] = trainer_part(args.trainer_seeds, args.out / "trainer-runs")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "noise_aware.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
