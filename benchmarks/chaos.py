"""SIGKILL label_batch and harvest_reviews at random moments and check that nothing is lost or duplicated.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chaos.py --rounds 3 --samples 40 --min-kills 20 --seed 1

Each stage runs as a real subprocess (`python -m flows.label_batch FILE`, `python -m
flows.harvest_reviews`) against a SQLite store, one local Prefect server and a local Label Studio
server, and is killed after a seeded random delay and restarted until it finishes. Between
stages a scripted annotator submits annotations through Label Studio's API. The same rounds run
once without faults first; at the end both stores export a snapshot, and the two must be equal.
Invariants are checked after every run, killed or not (see ``Checker``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the repo's packages and tests' fixtures

from benchmarks._procs import start_labelstudio, start_prefect_server, stop_group  # noqa: E402
from labeling.export import load_snapshot  # noqa: E402
from labeling.ingest import load_records, parse_records  # noqa: E402
from labeling.labelstudio.client import LabelStudioClient, choice_result  # noqa: E402
from labeling.labelstudio.harvest import annotation_key  # noqa: E402
from labeling.labelstudio.server import LabelStudioServer  # noqa: E402
from labeling.settings import IngestSettings  # noqa: E402
from labeling.store import Store  # noqa: E402
from labeling.synthetic import generate, write_jsonl  # noqa: E402

STAGES = {"label": ["-m", "flows.label_batch"], "harvest": ["-m", "flows.harvest_reviews"]}


def annotator_id(admin: LabelStudioClient, email: str = "chaos-annotator@juryflow.local") -> int:
    for user in admin.call("listing users", lambda: list(admin.sdk.users.list())):
        if user.email == email:
            return int(user.id)
    return int(admin.sdk.users.create(username="chaos-annotator", email=email).id)


def scripted_choice(sample_id: str) -> str:
    """The annotator's answer depends on the sample only, so faulty and no-fault runs see the same answers."""
    return "A" if int(hashlib.sha256(sample_id.encode()).hexdigest(), 16) % 3 else "B"


@dataclass
class Campaign:
    """One data dir + store + Label Studio project, driven through the stages by subprocesses."""

    name: str
    root: Path
    env: dict[str, str]
    admin: LabelStudioClient
    annotator: int
    inputs: list[Path] = field(default_factory=list)
    url: str | None = None  # the store's SQLAlchemy URL; None = SQLite in the data dir

    @property
    def store_url(self) -> str:
        return self.url or f"sqlite:///{self.root / 'data' / 'juryflow.db'}"

    def project_ids(self) -> list[int]:
        title = f"juryflow / {self.name}"
        projects = self.admin.call("listing projects", lambda: list(self.admin.sdk.projects.list(title=title)))
        return [int(p.id) for p in projects if p.title == title]

    def ls_tasks(self) -> list[dict]:
        out = []
        for pid in self.project_ids():
            params = {"project": pid, "fields": "all"}
            out += [{**t, "project": pid} for t in self.admin.list_json("listing tasks", "/api/tasks", params, "tasks")]
        return out

    def annotate_open_tasks(self) -> int:
        """Submit one annotation on every task that has none yet, through the real API."""
        n = 0
        for task in self.ls_tasks():
            if not task.get("annotations"):
                choice = scripted_choice(task["data"]["sample_id"])
                self.admin.call("annotating", self.admin.sdk.annotations.create, task["id"],
                                result=[choice_result(choice)], completed_by=self.annotator)
                n += 1
        return n


class Checker:
    """The invariants; each violation is counted as lost or duplicated and kept with its details."""

    def __init__(self) -> None:
        self.lost = 0
        self.duplicated = 0
        self.violations: list[str] = []
        self._valid: dict[Path, list[str]] = {}

    def _fail(self, kind: str, n: int, what: str) -> None:
        if n:
            setattr(self, kind, getattr(self, kind) + n)
            self.violations.append(f"{kind} {n}: {what}")

    def valid_ids(self, path: Path) -> list[str]:
        if path not in self._valid:
            samples, _ = parse_records(load_records(path), IngestSettings())
            self._valid[path] = [s.sample_id for s in samples]
        return self._valid[path]

    def check(self, c: Campaign, finished: str | None) -> None:
        """After any run: no duplicates anywhere. After a finished stage: nothing that stage owes is missing."""
        from sqlalchemy import func, select

        from labeling import store as tables

        st = Store(c.store_url)
        try:
            with st._engine.connect() as conn:
                for table in (tables.final_labels, tables.samples, tables.human_tasks):
                    dupes = conn.execute(select(table.c.sample_id).group_by(table.c.sample_id)
                                         .having(func.count() > 1)).all()
                    self._fail("duplicated", len(dupes), f"{c.name}: {table.name} rows per sample > 1: {dupes[:5]}")
            projects = c.project_ids()
            self._fail("duplicated", max(0, len(projects) - 1), f"{c.name}: projects with one title: {projects}")
            tasks = c.ls_tasks()
            per_sample: dict[str, list[int]] = {}
            for t in tasks:
                per_sample.setdefault(t["data"]["sample_id"], []).append(t["id"])
            extra = {s: ids for s, ids in per_sample.items() if len(ids) > 1}
            self._fail("duplicated", sum(len(v) - 1 for v in extra.values()), f"{c.name}: tasks per sample: {extra}")
            recorded = st.get_human_tasks()
            wrong = [s for s, ht in recorded.items() if ht.task_id not in per_sample.get(s, [])]
            self._fail("lost", len(wrong), f"{c.name}: recorded tasks missing in Label Studio: {wrong[:5]}")
            if finished == "label":
                ids = sorted({i for path in c.inputs for i in self.valid_ids(path)})
                states = st.sample_states(ids)
                final = ("labeled", "human_pending")
                missing = [i for i in ids if states.get(i) is None or states[i].value not in final]
                self._fail("lost", len(missing), f"{c.name}: samples not in a final state: {missing[:5]}")
            if finished == "harvest":
                keys = {annotation_key(t["project"], a["id"]): t["data"]["sample_id"]
                        for t in tasks for a in t.get("annotations") or []}
                stored = {hl.annotation_id for labels in st.get_human_labels(sorted(set(keys.values()))).values()
                          for hl in labels}
                unharvested = sorted(set(keys) - stored)
                self._fail("lost", len(unharvested), f"{c.name}: annotations not in the store: {unharvested[:5]}")
                finals = st.get_final_labels(sorted(set(keys.values())))
                unmerged = sorted(set(keys.values()) - set(finals))
                self._fail("lost", len(unmerged), f"{c.name}: annotated samples without a final label: {unmerged[:5]}")
                pushed = st.unpushed_human_pending()
                self._fail("lost", len(pushed), f"{c.name}: human_pending samples never pushed: {pushed[:5]}")
        finally:
            st.close()


@dataclass
class Runner:
    rng: random.Random
    checker: Checker
    logs: Path
    runs: int = 0
    kills: int = 0
    durations: dict[str, list[float]] = field(default_factory=dict)

    def _start(self, c: Campaign, stage: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        self.runs += 1
        path = self.logs / f"{c.name}-{stage}-{self.runs:04d}.log"
        with open(path, "w") as log:  # the child keeps its own handle
            proc = subprocess.Popen([sys.executable, *STAGES[stage], *args], cwd=REPO, env=c.env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return proc, path

    def _typical(self, what: str, default: float) -> float:
        seen = sorted(self.durations.get(what, [])) or [default]
        return seen[len(seen) // 2]

    def _plan_kill(self, step: str) -> tuple[str, float]:
        """Mostly inside the flow's work (start-up is most of a short run's wall time but holds no
        state): a fraction of the typical work time after the flow began; sometimes during start-up."""
        if self.rng.random() < 0.15:
            return "startup", self.rng.uniform(0.0, self._typical(f"{step}-startup", 5.0))
        return "work", self.rng.uniform(0.0, 0.9) * self._typical(f"{step}-work", 2.0)

    def run(self, c: Campaign, stage: str, args: list[str] = (), kills: int = 0, step: str | None = None) -> None:
        """Run the stage to completion, SIGKILLing it up to ``kills`` times at a random moment.

        ``step`` names what the run does (e.g. a harvest that only pushes), so kill times are drawn
        from the durations of runs like it."""
        step = step or stage
        killed = 0
        while True:
            proc, log = self._start(c, stage, list(args))
            started, began = time.monotonic(), None
            phase, offset = self._plan_kill(step) if killed < kills else ("never", 0.0)
            kill_at = started + offset if phase == "startup" else None
            while proc.poll() is None:
                now = time.monotonic()
                if began is None and "Beginning flow run" in log.read_text(errors="replace"):
                    began = now
                    kill_at = began + offset if phase == "work" else kill_at
                if kill_at is not None and now >= kill_at:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
                time.sleep(0.05)
            else:
                if proc.returncode != 0:
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"{stage} for {c.name} exited with {proc.returncode}:\n{tail}")
                ended = time.monotonic()
                began = began or ended
                self.durations.setdefault(f"{step}-startup", []).append(began - started)
                self.durations.setdefault(f"{step}-work", []).append(max(0.1, ended - began))
                self.checker.check(c, finished=stage)
                return
            self.kills += 1
            killed += 1
            self.checker.check(c, finished=None)


def play(runner: Runner, c: Campaign, inputs: list[Path], min_kills: int) -> None:
    """The same script for both campaigns: label each input, push, annotate, harvest; then export.

    Kills are spread over the stages; a run that finishes before its planned kill ends its stage,
    so each stage's budget is what is still missing over the stages left, plus one.
    """
    stages_left = 3 * len(inputs) + 1

    def budget() -> int:
        nonlocal stages_left
        missing = max(0, min_kills - runner.kills)
        stages_left -= 1
        return -(-missing // (stages_left + 1)) + 1 if min_kills else 0

    for path in inputs:
        c.inputs.append(path)
        runner.run(c, "label", [str(path)], budget(), step="label-input")
        runner.run(c, "harvest", kills=budget(), step="harvest-push")  # pushes the new review queue
        c.annotate_open_tasks()
        runner.run(c, "harvest", kills=budget(), step="harvest-read")  # reads the answers
    runner.run(c, "label", kills=budget(), step="label-export")  # no input: exports a snapshot of everything
    # A run that outran its planned kill leaves the campaign short (once 4 of 5 on a slow machine):
    # export again, killed, a few times; a re-export of unchanged data must give the same snapshot.
    for _ in range(5):
        if runner.kills >= min_kills:
            break
        runner.run(c, "label", kills=min_kills - runner.kills, step="label-export")


def snapshot_of(c: Campaign) -> dict:
    st = Store(c.store_url)
    try:
        return st.last_snapshot() or {}
    finally:
        st.close()


def make_inputs(work: Path, rounds: int, samples: int, seed: int) -> list[Path]:
    """Overlapping rounds (a re-sent tail) with one invalid row each, so ingest's skip paths run too."""
    rows = generate(rounds * samples, seed=seed)
    paths = []
    for r in range(rounds):
        batch = rows[max(0, r * samples - 5) : (r + 1) * samples]
        batch.append({"sample_id": f"broken-{r}", "prompt": "hi", "response_a": "same", "response_b": "same"})
        paths.append(write_jsonl(batch, work / f"round-{r}.jsonl"))
    return paths


def build_models(work: Path) -> dict[str, str]:
    """A fitted embedding labeler and a tiny local judge, so kills also land in the judge path."""
    from models.labelers.embedding import fit_embedding_head
    from models.tiny import build_tiny_causal_lm

    samples, _ = parse_records(load_records(write_jsonl(generate(200, seed=7), work / "fit.jsonl")), IngestSettings())
    head = work / "models" / "head"
    fit_embedding_head(samples, [s.reference_label for s in samples], head)
    (work / "models" / "judge").mkdir(parents=True, exist_ok=True)
    judge = build_tiny_causal_lm(work / "models" / "judge")
    return {"JURYFLOW__LABELER__MODEL_PATH": str(head), "JURYFLOW__JUDGE__MODEL_PATH": str(judge)}


def campaign_env(root: Path, name: str, prefect_url: str, ls_url: str, ls_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JURYFLOW__", "PREFECT_"))}
    env.update(
        JURYFLOW_CONFIG=str(root / "juryflow.yaml"),  # absent: defaults plus these variables
        JURYFLOW__DATA_DIR=str(root / "data"),
        JURYFLOW__CAMPAIGN=name,
        JURYFLOW__LABELSTUDIO__URL=ls_url,
        JURYFLOW__LABELSTUDIO__API_KEY=ls_token,
        JURYFLOW__INGEST__BATCH_SIZE="8",  # several chunks per run, so kills land between them
        PREFECT_API_URL=prefect_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def chaos(work: Path, rounds: int, samples: int, min_kills: int, seed: int, with_models: bool = False,
          servers: tuple[str, LabelStudioServer] | None = None) -> dict:
    """``with_models``: a labeler and tiny judge instead of a cold start (everything to humans).

    ``servers``: (Prefect API URL, LabelStudioServer) already running, e.g. the test session's; they are
    left running. Without them both are started here and stopped at the end.
    """
    rng = random.Random(seed)
    (work / "prefect").mkdir(parents=True)
    (work / "logs").mkdir()
    models = build_models(work) if with_models else {}
    if servers is None:
        prefect_proc, prefect_url = start_prefect_server(work / "prefect")
        ls = start_labelstudio(work / "ls")
    else:
        prefect_proc, (prefect_url, ls) = None, servers
    try:
        admin = LabelStudioClient(ls.url, ls.token)
        annotator = annotator_id(admin)
        inputs = make_inputs(work, rounds, samples, seed)
        tag = f"{seed}-{rng.randrange(16**6):06x}"
        checker = Checker()
        runner = Runner(rng, checker, work / "logs")
        campaigns = {}
        for name in ("nofault", "chaos"):
            root = work / name
            campaigns[name] = Campaign(f"{name}-{tag}", root, campaign_env(root, f"{name}-{tag}", prefect_url,
                                                                         ls.url, ls.token) | models, admin, annotator)
        started = time.monotonic()
        play(runner, campaigns["nofault"], inputs, min_kills=0)
        clean_runs = runner.runs
        play(runner, campaigns["chaos"], inputs, min_kills=min_kills)
        expected, got = snapshot_of(campaigns["nofault"]), snapshot_of(campaigns["chaos"])
        # The id is a hash of the rows; reading both back also proves the files are whole.
        same = (bool(expected) and expected.get("snapshot_id") == got.get("snapshot_id")
                and load_snapshot(expected["path"]).to_list() == load_snapshot(got["path"]).to_list())
        if not same:
            checker.violations.append(f"snapshot differs: no-fault {expected} vs chaos {got}")
        # A killed export leaves its staging dir behind (the rename never happened): litter, not data.
        leftovers = sorted(p.name for p in (campaigns["chaos"].root / "data" / "snapshots").glob(".*.tmp"))
        return {
            "seed": seed, "models": with_models, "runs": runner.runs - clean_runs, "kills": runner.kills,
            "lost": checker.lost, "duplicated": checker.duplicated, "snapshot_equal": same,
            "snapshot_rows": got.get("n_rows"), "staging_dirs_left": len(leftovers),
            "violations": checker.violations, "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        if servers is None:
            ls.stop()
            stop_group(prefect_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=40, help="new samples per round")
    parser.add_argument("--min-kills", type=int, default=20)
    parser.add_argument("--models", action="store_true", help="fitted labeler + tiny judge instead of a cold start")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir, removed afterwards")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    print(f"seed {seed}", flush=True)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="juryflow-chaos-"))
    result = chaos(work, args.rounds, args.samples, args.min_kills, seed, with_models=args.models)
    print(json.dumps(result, indent=2))
    if args.work_dir is None and not result["violations"]:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if result["violations"] or result["kills"] < args.min_kills else 0)


if __name__ == "__main__":
    main()
