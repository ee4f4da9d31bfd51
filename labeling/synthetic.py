"""A synthetic preference set with a learnable signal, for the demo, tests and benchmarks.

Each prompt asks about a topic. The preferred response stays on that topic; the other one
drifts to a different topic ("easy" pairs), or stays on topic but is dismissive and
unhelpful ("hard" pairs). A sentence encoder can learn the first kind well and the second
only partly, so routing shows confident and unsure samples side by side.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS: dict[str, list[str]] = {
    "the ocean": [
        "Ocean tides are driven mostly by the gravity of the Moon.",
        "Coral reefs cover a tiny part of the sea floor but shelter a quarter of marine species.",
        "The deepest point of the ocean is the Challenger Deep, nearly eleven kilometres down.",
        "Sea water is salty because rivers carry dissolved minerals into it over millions of years.",
    ],
    "baking bread": [
        "Bread rises because yeast ferments sugars and releases carbon dioxide into the dough.",
        "Kneading develops gluten, which gives bread its chewy structure.",
        "A hot oven with some steam gives bread a crisp, shiny crust.",
        "Sourdough uses a starter of wild yeast and lactic acid bacteria instead of packaged yeast.",
    ],
    "astronomy": [
        "A light-year is the distance light travels in one year, about 9.46 trillion kilometres.",
        "Jupiter is the largest planet in our solar system and has dozens of moons.",
        "Stars shine because nuclear fusion in their cores turns hydrogen into helium.",
        "The Andromeda galaxy is the nearest large spiral galaxy to the Milky Way.",
    ],
    "gardening": [
        "Tomatoes need at least six hours of direct sunlight a day to fruit well.",
        "Mulch keeps soil moist and suppresses weeds around your plants.",
        "Compost adds organic matter that improves soil structure and feeds soil life.",
        "Water plants deeply and less often so that their roots grow down.",
    ],
    "personal finance": [
        "An emergency fund of three to six months of expenses protects you from surprises.",
        "Paying off high-interest debt first saves the most money over time.",
        "Index funds spread your money across many companies at a low cost.",
        "A budget starts by writing down what you earn and what you spend each month.",
    ],
    "learning a language": [
        "Short daily practice beats long sessions once a week for learning vocabulary.",
        "Spaced repetition flashcards help you remember words for the long term.",
        "Speaking with native speakers early builds confidence and listening skills.",
        "Reading simple books in the language shows grammar in context.",
    ],
    "running": [
        "Increase your weekly running distance by no more than about ten percent.",
        "Good running shoes should fit your foot shape and running style.",
        "Easy runs at a conversational pace build most of your endurance.",
        "Rest days let your muscles repair and make you stronger.",
    ],
    "computer security": [
        "A password manager lets you use a long, unique password for every account.",
        "Two-factor authentication stops most attacks that rely on stolen passwords.",
        "Keep your operating system updated so known vulnerabilities are patched.",
        "Phishing emails often create false urgency to make you click a link.",
    ],
}
PROMPT_TEMPLATES = [
    "Tell me something useful about {topic}.",
    "Can you share a fact about {topic}?",
    "I'm curious about {topic}. What should I know?",
    "Give me one tip about {topic}, please.",
]
DISMISSIVE = [
    "I don't really feel like explaining that. Look it up yourself.",
    "Whatever. That's a boring question and I won't bother.",
    "Why would anyone care? Ask someone else.",
]


def generate(n: int, seed: int = 0, hard_fraction: float = 0.3) -> list[dict]:
    """``n`` rows in juryflow's generic shape; response_a is the preferred one before shuffling."""
    rng = random.Random(seed)
    topics = sorted(TOPICS)
    rows = []
    for i in range(n):
        topic = rng.choice(topics)
        prompt = rng.choice(PROMPT_TEMPLATES).format(topic=topic)
        chosen = rng.choice(TOPICS[topic])
        if rng.random() < hard_fraction:
            rejected = rng.choice(DISMISSIVE)
            kind = "hard"
        else:
            other = rng.choice([t for t in topics if t != topic])
            rejected = rng.choice(TOPICS[other])
            kind = "easy"
        rows.append(
            {
                "sample_id": f"synthetic-{seed}-{i:06d}",
                "prompt": prompt,
                "response_a": chosen,
                "response_b": rejected,
                "preferred": "A",  # ingest shuffles A/B by sample id and keeps this as reference_label
                "metadata": {"kind": kind, "topic": topic},
            }
        )
    return rows


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
