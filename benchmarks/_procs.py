"""Process control shared by the fault benchmarks (chaos.py, soak.py): free ports, a local Prefect
server, a Label Studio server from the migrated template, a throwaway PostgreSQL cluster, and
SIGKILL of a whole process tree (a lost machine takes its children with it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_tree(pid: int) -> int:
    """SIGKILL a process and every descendant, even those in their own sessions (Prefect starts flow
    runs with start_new_session, so a process-group kill would leave them running). Returns how many died."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _, alive = psutil.wait_procs(procs, timeout=10)
    if alive:
        raise RuntimeError(f"processes survived SIGKILL: {[p.pid for p in alive]}")
    return len(procs)


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_group(proc)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s; see {log}")


def launch_prefect_server(home: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a local `prefect server start` (own PREFECT_HOME and SQLite database, a free port) without
    waiting for it, so other servers can start meanwhile; ``wait_healthy(url + "/health", ...)`` then."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               **(extra_env or {}))
    with open(home / "server.log", "w") as log:  # the child keeps its own handle
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, stdin=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}/api"


def start_prefect_server(home: Path, timeout_s: float = 240.0, extra_env: dict[str, str] | None = None,
                         ) -> tuple[subprocess.Popen, str]:
    """One shared Prefect API for every run, so a restart does not pay the ephemeral start-up."""
    proc, url = launch_prefect_server(home, extra_env)
    wait_healthy(f"{url}/health", proc, home / "server.log", timeout_s)
    return proc, url


def start_labelstudio(root: Path, timeout_s: float = 240.0):
    """A Label Studio server from a copy of the migrated template data dir (built once per machine)."""
    from labeling.labelstudio.server import LabelStudioServer, default_venv
    from tests.labeling.labelstudio.conftest import build_template

    venv = default_venv()
    template = build_template(venv)
    shutil.copytree(template / "labelstudio", root / "labelstudio")
    return LabelStudioServer(root, port=free_port(), venv=venv).start(timeout_s=timeout_s)


@contextlib.contextmanager
def pg_schemas(pg_url: str, prefix: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL schemas, each as a store URL (search_path in the URL);
    every schema it made is dropped on exit."""
    from sqlalchemy import create_engine, text

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        made.append(f"{prefix}_{uuid.uuid4().hex[:12]}")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{made[-1]}"'))
        return f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{made[-1]}"

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for schema in made:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / name).is_file():
            return str(candidate / name)
    raise RuntimeError(f"{name} not found: install the server (apt-get install -y postgresql)")


class PostgresCluster:
    """A throwaway cluster from scripts/start_test_postgres.sh that can be SIGKILLed and restarted
    on the same port and data dir, so the store URL stays valid."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        done = subprocess.run(["bash", str(REPO / "scripts" / "start_test_postgres.sh"), str(data_dir)],
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/start_test_postgres.sh {data_dir} failed: {done.stderr.strip()[-1000:]}")
        self.url = done.stdout.strip().splitlines()[-1]
        self.port = urlsplit(self.url).port
        self._as_server_user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    def _pg_ctl(self, *args: str) -> None:
        cmd = [*self._as_server_user, _pg_bin("pg_ctl"), "-D", str(self.data_dir), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[-1]} on {self.data_dir} failed: {done.stderr.strip()[-500:]}")

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            return pid if psutil.pid_exists(pid) else None
        return None

    def kill(self) -> int:
        """SIGKILL the postmaster and every backend (a crash, not a shutdown)."""
        pid = self.postmaster_pid()
        return kill_tree(pid) if pid else 0

    def start(self) -> None:
        # The same options as scripts/start_test_postgres.sh; startup runs crash recovery after a kill.
        self._pg_ctl("-l", str(self.data_dir / "server.log"), "-w", "-t", "60", "-o",
                     f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} -c fsync=off -c max_connections=100", "start")

    def stop(self) -> None:
        if self.postmaster_pid():
            self._pg_ctl("-m", "fast", "-w", "stop")
