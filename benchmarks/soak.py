"""A soak with faults: the deployments of prefect.yaml, run by a process worker, while the worker,
Label Studio and PostgreSQL are SIGKILLed at random and restarted after a pause.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soak.py --minutes 30 --seed 1

One local `prefect server start`, a `prefect worker start --pool juryflow-cpu` (its own process tree:
a kill takes the flow runs with it, as a lost machine would), Label Studio and a throwaway PostgreSQL
cluster (the store). prefect.yaml is deployed from a copy whose schedules are shortened to seconds,
and automations/heartbeat.yaml from a copy whose silence window is shortened to match. Input files
appear over time (each is handed to the label-batch deployment, as a file-arrival trigger would, and
handed again until a run for it completes); a scripted annotator answers every open Label Studio task.
After the faults stop, the script drains: every valid sample labeled, every flow run final. Then
the same inputs run serially without faults (a SQLite store, flows called in one process), and the
two snapshots must be equal. Prints runs, kills by kind, recovered runs, lost and duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the repo's packages and tests' fixtures

from benchmarks._procs import PREFECT, PostgresCluster, kill_tree, launch_prefect_server  # noqa: E402
from benchmarks._procs import start_labelstudio, stop_group, wait_healthy  # noqa: E402
from benchmarks._soak_runs import FlowRuns, run_summary  # noqa: E402
from benchmarks.chaos import Campaign, Checker, annotator_id, campaign_env, make_inputs, snapshot_of  # noqa: E402

KINDS = ("worker", "labelstudio", "postgres")
HEARTBEAT_S = 30  # Prefect's smallest heartbeat interval (flows.heartbeat_frequency >= 30)


@dataclass(frozen=True, order=True)
class Fault:
    at_s: float
    kind: str
    pause_s: float


def plan_faults(rng: random.Random, duration_s: float, per_kind: int, pause_s: tuple[float, float]) -> list[Fault]:
    """``per_kind`` kills of each kind, one in each of ``per_kind`` equal slots of the soak, so that one
    kind's outages never overlap; different kinds may (PostgreSQL down while Label Studio is)."""
    slot = duration_s / per_kind
    faults = [Fault(round((i + rng.uniform(0.1, 0.6)) * slot, 1), kind,
                    round(min(rng.uniform(*pause_s), 0.3 * slot), 1))
              for kind in KINDS for i in range(per_kind)]
    return sorted(faults)


def shortened_prefect_yaml(out: Path, label_every_s: int, harvest_every_s: int) -> Path:
    """prefect.yaml with the label and harvest schedules in seconds and the shortest heartbeat."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for pool in spec["definitions"]["work_pools"].values():  # the deployments share these dicts (YAML anchors)
        pool["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(HEARTBEAT_S)
    every = {"label-batch": label_every_s, "harvest-reviews": harvest_every_s}
    for deployment in spec["deployments"]:
        if deployment["name"] in every:
            deployment["schedules"] = [{"interval": every[deployment["name"]]}]
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def shortened_automation(name: str, within_s: int) -> dict:
    """automations/<name>.yaml with its silence window (and the message quoting it) set to ``within_s``."""
    (automation,) = yaml.safe_load((REPO / "automations" / f"{name}.yaml").read_text())["automations"]
    shipped = automation["trigger"]["within"]
    automation["trigger"]["within"] = within_s
    automation["actions"][0]["message"] = automation["actions"][0]["message"].replace(f"{shipped} s", f"{within_s} s")
    return automation


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 300) -> str:
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        tail = f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        raise RuntimeError(f"`{' '.join(args[:4])} ...` exited {done.returncode}:\n{tail}")
    return done.stdout


def deploy(runs: FlowRuns, work: Path, env: dict[str, str], label_every_s: int, harvest_every_s: int,
           within_s: int) -> None:
    """Work pools, `prefect deploy --all` from the shortened copy, and the automations that end runs whose
    worker died: no heartbeat for ``within_s``, or Pending for twice that."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.events.schemas.automations import AutomationCore

    for pool in ("juryflow-cpu", "juryflow-gpu"):
        runs.client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    # The automations first, well before any run: in one soak a run that went Pending 25 s after they
    # were created was never seen by the Pending automation (later ones were).
    for name, window in (("heartbeat", within_s), ("pending", 2 * within_s)):
        runs.client.create_automation(AutomationCore.model_validate(shortened_automation(name, window)))
    spec = shortened_prefect_yaml(work / "prefect.yaml", label_every_s, harvest_every_s)
    run_cli([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(spec)], env)


@dataclass
class Soak:
    work: Path
    rng: random.Random
    env: dict[str, str]
    runs: FlowRuns
    campaign: Campaign
    pg: PostgresCluster
    ls: object  # LabelStudioServer
    worker: subprocess.Popen | None = None
    kills: Counter = field(default_factory=Counter)
    down_until: dict[str, float] = field(default_factory=dict)
    killed_run_ids: set = field(default_factory=set)
    annotated: int = 0
    annotate_errors: int = 0
    _submitted_at: dict[str, float] = field(default_factory=dict)
    _worker_starts: int = 0

    def start_worker(self) -> None:
        self._worker_starts += 1
        with open(self.work / "logs" / f"worker-{self._worker_starts:02d}.log", "w") as log:
            self.worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "juryflow-cpu", "--type", "process",
                                            "--name", "soak-worker"], env=self.env, cwd=REPO, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self, kind: str) -> None:
        if kind == "worker":
            self._kill_worker(self.runs.in_flight())
        elif kind == "labelstudio":
            kill_tree(self.ls._state()["pid"])
        else:
            self.pg.kill()
        self.kills[kind] += 1

    def kill_worker_mid_run(self) -> bool:
        """Kill the worker only while a run is Running and none is Pending; False (worker untouched) if not.
        The runs are read with the worker stopped (SIGSTOP), so it cannot take a run Pending between the
        read and the kill. A run killed Pending within 5 min of the scheduler making it is not seen by
        automations/pending.yaml for 15 min (see the comment there): the short soak's drain would time out."""
        if "RUNNING" not in self.runs.in_flight().values():
            return False  # the cheap read first: no need to stop the worker
        worker = psutil.Process(self.worker.pid)
        worker.suspend()
        time.sleep(0.5)  # a Pending proposal already on the wire lands before the read
        in_flight = self.runs.in_flight()
        if "RUNNING" not in in_flight.values() or "PENDING" in in_flight.values():
            worker.resume()
            return False
        self._kill_worker(in_flight)
        self.kills["worker"] += 1
        return True

    def _kill_worker(self, in_flight: dict) -> None:
        self.killed_run_ids |= set(in_flight)  # these lose their process with the worker
        kill_tree(self.worker.pid)
        self.worker.wait()

    def restart(self, kind: str) -> None:
        if kind == "worker":
            self.start_worker()
        elif kind == "labelstudio":
            url = self.ls.url
            if self.ls.start(timeout_s=240).url != url:
                raise RuntimeError(f"Label Studio came back on {self.ls.url}, not {url}: the flows' URL is stale")
        else:
            self.pg.start()

    def hand_over_inputs(self, inputs: list[Path]) -> bool:
        """Hand each arrived file to label-batch until a run for it completes; True when all have. A file
        goes over only while no label-batch run is in flight: one would cancel it (CANCEL_NEW)."""
        by_input = self.runs.by_input()
        busy = self.runs.label_batch_in_flight()
        done = True
        for path in inputs:
            states = by_input.get(str(path), [])
            if "COMPLETED" in states:
                continue
            done = False
            if not busy and time.monotonic() - self._submitted_at.get(str(path), -1e9) > 15:
                self.runs.submit("label-batch/label-batch", {"input_path": str(path)})
                self._submitted_at[str(path)] = time.monotonic()
                busy = True
        return done

    def annotate(self) -> None:
        if "labelstudio" in self.down_until:
            return
        try:
            self.annotated += self.campaign.annotate_open_tasks()
        except Exception:  # noqa: BLE001 - Label Studio just restarted, or a request raced the kill: next tick
            self.annotate_errors += 1


def soak(work: Path, minutes: float, seed: int, samples_per_file: int = 24, files: int | None = None,
         per_kind: int | None = None, label_every_s: int = 120, harvest_every_s: int = 45, within_s: int = 120,
         pause_s: tuple[float, float] = (5.0, 25.0), drain_s: float = 1200.0) -> dict:
    """Run the soak in ``work`` (created) and return its figures; every process it started is stopped."""
    rng = random.Random(seed)
    duration_s = minutes * 60
    files = files or max(2, round(minutes / 3))
    per_kind = per_kind or max(1, round(minutes / 4))
    faults = plan_faults(rng, duration_s, per_kind, pause_s)
    for sub in ("prefect", "prefect-client", "logs", "inbox", "soak", "nofault"):
        (work / sub).mkdir(parents=True)
    started = time.monotonic()
    phases: dict[str, float] = {}  # seconds from the start to the end of each phase, to see where a run's time goes

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started, 1)

    # The three servers start side by side: Prefect in the background, PostgreSQL, then Label Studio.
    prefect_proc, prefect_url = launch_prefect_server(work / "prefect", extra_env={
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"})  # new deployments get their runs at once
    pg = ls = soak_ = replaying = None
    try:
        # Outside ``work``: the server runs as the postgres user, which may not enter a private dir (pytest's).
        pg = PostgresCluster(Path(tempfile.mkdtemp(prefix="juryflow-soak-pg-")))
        ls = start_labelstudio(work / "ls")
        wait_healthy(f"{prefect_url}/health", prefect_proc, work / "prefect" / "server.log", 240)
        from labeling.labelstudio.client import LabelStudioClient
        from labeling.store import Store

        admin = LabelStudioClient(ls.url, ls.token)
        name = f"soak-{seed}"
        env = campaign_env(work / "soak", name, prefect_url, ls.url, ls.token) | {
            "JURYFLOW__STORE_URL": pg.url, "JURYFLOW_HOME": str(REPO), "PYTHONPATH": str(REPO),
            "PREFECT_HOME": str(work / "prefect-client"),
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_LOGGING_LEVEL": "INFO"}
        Store(pg.url).close()  # migrate once, before two flow runs race to
        phase("servers_up")
        campaign = Campaign(name, work / "soak", env, admin, annotator_id(admin), url=pg.url)
        runs = FlowRuns(prefect_url)
        deploy(runs, work, env, label_every_s, harvest_every_s, within_s)
        soak_ = Soak(work, rng, env, runs, campaign, pg, ls)
        soak_.start_worker()
        phase("deployed")
        all_inputs = make_inputs(work / "inbox", files, samples_per_file, seed)
        arrive_every = duration_s * 0.8 / files  # the last file still meets faults
        t0, pending, last_annotate = time.monotonic(), list(faults), 0.0
        # Past the end only to carry out a worker kill still aiming, and its restart.
        while (now := time.monotonic() - t0) < duration_s or pending or soak_.down_until:
            campaign.inputs = all_inputs[: min(files, 1 + int(now // arrive_every))]
            _tick(soak_, pending, now, last_annotate)
            last_annotate = now if now - last_annotate >= 10 else last_annotate
            time.sleep(1)
        for kind in list(soak_.down_until):
            soak_.restart(kind)
            del soak_.down_until[kind]
        campaign.inputs = all_inputs
        phase("faults_over")
        # No faults from here on, so the fault-free run can share the servers while the soak drains.
        replaying = replay(work / "nofault", f"nofault-{seed}", all_inputs, prefect_url, ls)
        drained = _drain(soak_, all_inputs, drain_s, phase)
        soak_seconds = round(time.monotonic() - started, 1)
        expected = replay_result(replaying)
        phase("fault_free_run_done")
        return _figures(soak_, drained, expected, seed, minutes, soak_seconds, faults) | {"phases": phases}
    finally:
        if replaying is not None and replaying.poll() is None:
            replaying.kill()
        if soak_ is not None and soak_.worker is not None and soak_.worker.poll() is None:
            kill_tree(soak_.worker.pid)
        if ls is not None:
            ls.stop()
        stop_group(prefect_proc)
        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.data_dir, ignore_errors=True)


def _tick(soak_: Soak, pending: list[Fault], now: float, last_annotate: float) -> None:
    soak_.hand_over_inputs(soak_.campaign.inputs)
    if now - last_annotate >= 10:
        soak_.annotate()
    for kind, until in list(soak_.down_until.items()):
        if now >= until:
            soak_.restart(kind)
            del soak_.down_until[kind]
    for fault in [f for f in pending if f.at_s <= now]:
        if fault.kind in soak_.down_until:
            continue
        # A worker kill aims (up to 120 s late) at a moment a run is Running, so that the heartbeat automation
        # is exercised, and none is Pending, so that a short soak need not wait out the Pending window.
        if fault.kind == "worker" and now < fault.at_s + 120:
            if not soak_.kill_worker_mid_run():
                continue
        else:
            soak_.kill(fault.kind)
        soak_.down_until[fault.kind] = now + fault.pause_s
        pending.remove(fault)


def _drain(soak_: Soak, inputs: list[Path], timeout_s: float, phase: Callable[[str], None]) -> dict:
    """No more faults: wait until every file's run completed and every valid sample has a final label,
    export once more through the deployment, pause the schedules and wait until no run is in flight."""
    from labeling.store import Store

    checker = Checker()
    ids = sorted({i for path in inputs for i in checker.valid_ids(path)})
    deadline = time.monotonic() + timeout_s
    st = Store(soak_.campaign.store_url)
    try:
        while time.monotonic() < deadline:
            files_done = soak_.hand_over_inputs(inputs)
            soak_.annotate()
            if files_done and len(st.get_final_labels(ids)) == len(ids):
                break
            time.sleep(5)
        phase("all_labelled")
        export_id = soak_.runs.run_to_completion("label-batch/label-batch", {}, deadline)
    finally:
        st.close()
    phase("exported")
    soak_.runs.pause_all()
    left = soak_.runs.wait_until_settled(deadline)
    phase("settled")
    return {"export_run": export_id, "left_in_flight": left, "checker": checker}


def replay(root: Path, name: str, inputs: list[Path], prefect_url: str, ls) -> subprocess.Popen:
    """Start the same inputs without faults, serially: one process calls the flows (``_replay_main``)."""
    env = campaign_env(root, name, prefect_url, ls.url, ls.token)
    env["PREFECT_HOME"] = str(root / "prefect-client")
    with open(root / "replay.log", "w") as log:
        return subprocess.Popen([sys.executable, __file__, "--replay", *map(str, inputs)], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL)


def replay_result(proc: subprocess.Popen, timeout_s: float = 1800) -> dict:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"fault-free replay exited {proc.returncode}; see its log beside the no-fault data dir")
    return json.loads(out.strip().splitlines()[-1])


def _replay_main(inputs: list[str]) -> None:
    from flows.harvest_reviews import harvest_reviews
    from flows.label_batch import label_batch
    from labeling.labelstudio.client import LabelStudioClient
    from labeling.settings import load_settings

    cfg = load_settings()
    admin = LabelStudioClient(cfg.labelstudio.url, cfg.labelstudio.api_key.get_secret_value())
    campaign = Campaign(cfg.campaign, cfg.data_dir.parent, dict(os.environ), admin, annotator_id(admin))
    for path in inputs:
        label_batch(path)
        harvest_reviews()  # pushes the new review queue
        campaign.annotate_open_tasks()
        harvest_reviews()  # reads the answers
    label_batch()  # no input: exports a snapshot of everything
    print(json.dumps({k: str(v) for k, v in snapshot_of(campaign).items()}))


def _figures(soak_: Soak, drained: dict, expected: dict, seed: int, minutes: float, seconds: float,
             faults: list[Fault]) -> dict:
    from labeling.export import load_snapshot

    checker = drained["checker"]
    checker.check(soak_.campaign, finished="label")
    checker.check(soak_.campaign, finished="harvest")
    got = snapshot_of(soak_.campaign)
    same = (bool(got) and got.get("snapshot_id") == expected.get("snapshot_id")
            and load_snapshot(got["path"]).to_list() == load_snapshot(expected["path"]).to_list())
    if not same:
        checker.violations.append(f"snapshot differs: fault-free {expected} vs soak {got}")
    rows = load_snapshot(got["path"]).to_list() if got else []
    row_ids = [r["sample_id"] for r in rows]
    ids = {i for path in soak_.campaign.inputs for i in checker.valid_ids(path)}
    checker._fail("duplicated", len(row_ids) - len(set(row_ids)), "snapshot rows per sample > 1")
    missing = sorted(ids - set(row_ids))
    checker._fail("lost", len(missing), f"valid samples missing from the snapshot: {missing[:5]}")
    summary = run_summary(soak_.runs.all_runs(), soak_.killed_run_ids)
    if drained["left_in_flight"]:
        checker.violations.append(f"flow runs left in flight: {drained['left_in_flight']}")
    reconcile = run_reconcile(soak_.env)
    if not reconcile["ok"]:
        checker.violations.append(f"reconcile exited {reconcile['exit']}: {reconcile['line']}")
    return {
        "seed": seed, "minutes": minutes, "seconds": seconds, **summary,
        "kills": dict(soak_.kills), "kills_planned": len(faults),
        "lost": checker.lost, "duplicated": checker.duplicated,
        "snapshot_equal": same, "snapshot_rows": got.get("n_rows"), "annotated": soak_.annotated,
        "annotate_retries": soak_.annotate_errors, "reconcile": reconcile, "violations": checker.violations,
    }


def run_reconcile(env: dict[str, str]) -> dict:
    """`juryflow labelstudio reconcile --quiet`: its last line reads `reconcile: N unexplained (...)`,
    and it exits 0 only when nothing is unexplained."""
    juryflow = str(Path(sys.executable).parent / "juryflow")
    done = subprocess.run([juryflow, "labelstudio", "reconcile", "--quiet"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    line = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
    found = re.match(r"reconcile: (\d+) unexplained", line)
    return {"exit": done.returncode, "line": line, "unexplained": int(found.group(1)) if found else None,
            "ok": done.returncode == 0 and found is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long faults are injected (then it drains)")
    parser.add_argument("--samples", type=int, default=24, help="new samples per input file")
    parser.add_argument("--files", type=int, default=None, help="input files arriving (default: one per 3 min)")
    parser.add_argument("--kills-per-kind", type=int, default=None, help="default: one per 4 minutes")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir, kept for inspection")
    parser.add_argument("--replay", nargs="+", help=argparse.SUPPRESS)  # the fault-free run's own process
    args = parser.parse_args()
    if args.replay:
        return _replay_main(args.replay)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="juryflow-soak-"))
    print(f"seed {seed}, work dir {work}", flush=True)
    result = soak(work, args.minutes, seed, args.samples, args.files, args.kills_per_kind)
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["violations"] else 0)


if __name__ == "__main__":
    main()
