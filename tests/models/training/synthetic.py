"""A learnable preference task for tiny models, and snapshots in labeling/export.py's format.

The prompt asks for a word from a topic; the chosen reply contains a word from that topic and
the rejected reply a word from the other one. Tiny random models can learn this (the signal is
one token matching the prompt), unlike arithmetic.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from labeling.schemas import content_hash

TOPICS = {
    "colors": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"],
    "animals": ["cat", "dog", "horse", "cow", "sheep", "goat", "duck", "bird"],
}
PROMPT_TEMPLATES = ["Reply with a word about {t}.", "Name one of the {t}.", "Say something about {t}."]
REPLY_TEMPLATES = ["{w}", "I say {w}.", "My answer is {w}.", "{w} it is."]
SOURCES = ["judge", "human", "human_over_judge"]


def preference_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    topics = list(TOPICS)
    for i in range(n):
        topic = rng.choice(topics)
        other = next(t for t in topics if t != topic)
        prompt = rng.choice(PROMPT_TEMPLATES).format(t=topic)
        chosen = rng.choice(REPLY_TEMPLATES).format(w=rng.choice(TOPICS[topic]))
        rejected = rng.choice(REPLY_TEMPLATES).format(w=rng.choice(TOPICS[other]))
        rows.append(
            {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "sample_id": f"syn-{seed}-{i:05d}",
                "source": SOURCES[i % len(SOURCES)],
                "labeler_version": "embedding-test",
                "judge_version": "judge-test",
                "confidence": 0.9,
                "n_annotators": 0 if i % 3 == 0 else 1,
            }
        )
    return rows


def corpus() -> list[str]:
    """Every word of the task, so the tiny tokenizer has each as a token."""
    texts = [t.format(t=topic) for t in PROMPT_TEMPLATES for topic in TOPICS]
    texts += [r.format(w=w) for r in REPLY_TEMPLATES for words in TOPICS.values() for w in words]
    return texts * 20


def write_snapshot(root: Path, rows: list[dict]) -> str:
    """Write ``<root>/<snapshot_id>/{dataset/, data.parquet, snapshot.json}`` as export_snapshot does."""
    from datasets import Dataset

    snapshot_id = content_hash([r["sample_id"] for r in rows], len(rows))
    path = Path(root) / snapshot_id
    columns = ["prompt", "chosen", "rejected", "sample_id", "source", "labeler_version", "judge_version", "confidence", "n_annotators"]
    dataset = Dataset.from_dict({c: [r[c] for r in rows] for c in columns})
    dataset.save_to_disk(str(path / "dataset"))
    dataset.to_parquet(str(path / "data.parquet"))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    (path / "snapshot.json").write_text(json.dumps({"snapshot_id": snapshot_id, "n_rows": len(rows), "counts_by_source": counts}))
    return snapshot_id
