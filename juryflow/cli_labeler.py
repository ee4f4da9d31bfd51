"""``juryflow labeler ...``: fit the AI labeler on human labels.

Two kinds: ``embedding`` (frozen MiniLM + logistic head, seconds) and ``cross-encoder`` (MiniLM
fine-tuned as a reward model with trl.RewardTrainer, minutes on a CPU; labels as ``reward_model``).

Example: ``juryflow labeler fit --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --limit 1000``
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from labeling.schemas import Choice, LabelSource, Sample, unit_hash

app = typer.Typer(help="Fit and inspect the AI labeler.", no_args_is_help=True)
console = Console(soft_wrap=True)  # one message, one line: logs and grep read it whole

# Only labels a person gave train the labeler; judge-accepted labels would teach it its own mistakes.
HUMAN_SOURCES = {LabelSource.human, LabelSource.human_over_judge}


def _from_file(path: Path, limit: int | None) -> tuple[list[Sample], list[Choice]]:
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings

    records = load_records(path)
    samples, rejected = parse_records(islice(records, limit) if limit else records, load_settings().ingest)
    for record in rejected[:5]:
        console.print(f"[yellow]skipped {record.message}[/yellow]")
    if len(rejected) > 5:
        console.print(f"[yellow]... and {len(rejected) - 5} more rejected rows[/yellow]")
    labeled = [s for s in samples if s.reference_label is not None]
    if len(labeled) < len(samples):
        console.print(f"[yellow]{len(samples) - len(labeled)} rows have no reference label and are not used[/yellow]")
    return labeled, [s.reference_label for s in labeled]  # type: ignore[misc]


def _from_store() -> tuple[list[Sample], list[Choice]]:
    from labeling.settings import load_settings
    from labeling.store import Store

    pairs = [(s, f) for s, f in Store.from_settings(load_settings()).iter_labeled() if f.source in HUMAN_SOURCES]
    return [s for s, _ in pairs], [f.preferred for _, f in pairs]


@app.command()
def fit(
    data: Annotated[
        Optional[Path], typer.Option("--data", help="labeled JSONL[.gz]/Parquet/datasets dir (reference labels)")
    ] = None,
    from_store: Annotated[bool, typer.Option("--from-store", help="also use human labels merged in the store")] = False,
    limit: Annotated[Optional[int], typer.Option(help="read at most this many rows of --data")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="directory for embedding_head.json; default <data_dir>/labeler")
    ] = None,
    holdout: Annotated[float, typer.Option(help="share of pairs held out to measure accuracy", min=0.0, max=0.9)] = 0.2,
    c: Annotated[float, typer.Option("--C", help="inverse L2 strength of the logistic head", min=1e-6)] = 0.05,
    kind: Annotated[str, typer.Option(help="embedding (logistic head) or cross-encoder (RewardTrainer)")] = "embedding",
    recipe: Annotated[Path, typer.Option(help="reward-model recipe for --kind cross-encoder")] = Path(
        "recipes/labeler_cross_encoder.yaml"
    ),
) -> None:
    """Fit the AI labeler on labeled pairs and print its held-out accuracy."""
    from labeling.settings import load_settings
    from models.labelers.embedding import fit_embedding_head, read_head

    if kind not in ("embedding", "cross-encoder"):
        console.print(f"[red]--kind {kind!r}: use embedding or cross-encoder[/red]")
        raise typer.Exit(2)
    if data is None and not from_store:
        console.print("[red]nothing to fit on: pass --data FILE and/or --from-store[/red]")
        raise typer.Exit(2)
    samples: list[Sample] = []
    labels: list[Choice] = []
    if data is not None:
        file_samples, file_labels = _from_file(data, limit)
        samples, labels = samples + file_samples, labels + file_labels
    if from_store:
        store_samples, store_labels = _from_store()
        samples, labels = samples + store_samples, labels + store_labels
    # A split seeded by sample id: the same pair is always on the same side, run after run.
    is_eval = [unit_hash("labeler-holdout", s.sample_id) < holdout for s in samples]
    train = [(s, y) for s, y, e in zip(samples, labels, is_eval) if not e]
    held = [(s, y) for s, y, e in zip(samples, labels, is_eval) if e]
    if len(train) < 10:
        console.print(f"[red]only {len(train)} labeled training pairs: label 10 or more (better: hundreds)[/red]")
        raise typer.Exit(2)
    if kind == "cross-encoder":
        _fit_cross_encoder(train, held, out or load_settings().data_dir / "labeler-cross-encoder", recipe)
        return
    out_dir = out or load_settings().data_dir / "labeler"
    with console.status(f"encoding {len(samples)} pairs with MiniLM and fitting the head..."):
        path = fit_embedding_head(
            [s for s, _ in train],
            [y for _, y in train],
            out_dir,
            C=c,
            eval_samples=[s for s, _ in held],
            eval_labels=[y for _, y in held],
        )
    metrics = read_head(path).spec["fit"]
    console.print(f"trained on {metrics['n_train']} pairs: train accuracy {metrics['train_accuracy']:.3f}")
    if held:
        console.print(
            f"held out {metrics['n_eval']} pairs: accuracy {metrics['eval_accuracy']:.3f} "
            f"(most confident 50%: {metrics['eval_accuracy_top50']:.3f}, 30%: {metrics['eval_accuracy_top30']:.3f})"
        )
    console.print(f"wrote {path}")
    console.print(
        "use it: set labeler.model_path in juryflow.yaml\n"
        f"  labeler:\n    backend: embedding\n    model_path: {path.resolve()}\n"
        f"or export JURYFLOW__LABELER__BACKEND=embedding JURYFLOW__LABELER__MODEL_PATH={path.resolve()}"
    )


def _fit_cross_encoder(
    train: list[tuple[Sample, Choice]], held: list[tuple[Sample, Choice]], out_dir: Path, recipe: Path
) -> None:
    from models.labelers.embedding import accuracy_at_coverage
    from models.labelers.reward_model import RewardModelLabeler
    from models.training.reward import fit_reward_labeler

    console.print(f"fine-tuning the cross-encoder on {len(train)} pairs with {recipe} (minutes on a CPU)...")
    try:
        fit_reward_labeler(recipe, [s for s, _ in train], [y for _, y in train], out_dir)
    except ValueError as exc:  # RecipeError and SnapshotError included
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if held:
        with RewardModelLabeler(out_dir) as labeler:
            p_a = [lab.p_a for lab in labeler.label([s for s, _ in held])]
        truth = [y for _, y in held]
        console.print(
            f"held out {len(held)} pairs: accuracy {accuracy_at_coverage(p_a, truth):.3f} "
            f"(most confident 50%: {accuracy_at_coverage(p_a, truth, 0.5):.3f}, "
            f"30%: {accuracy_at_coverage(p_a, truth, 0.3):.3f})"
        )
    console.print(f"wrote {out_dir}")
    console.print(
        "use it: set in juryflow.yaml\n"
        f"  labeler:\n    backend: reward_model\n    model_path: {out_dir.resolve()}\n"
        "or promote a reward model trained by the train-reward-model flow with the same recipe"
    )


@app.command()
def show(head: Annotated[Path, typer.Argument(help="embedding_head.json or its directory")]) -> None:
    """Print a fitted head's encoder, features, version and fit metrics."""
    from models.labelers.embedding import EmbeddingLabeler

    try:
        labeler = EmbeddingLabeler(head)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    spec = labeler._head.spec
    console.print(f"{labeler.head_path}  version {labeler.version}")
    console.print(f"encoder {spec['encoder']}, features {', '.join(spec['features'])}, C={spec['C']}")
    for key, value in spec["fit"].items():
        console.print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
