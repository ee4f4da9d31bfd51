"""A local Label Studio server that juryflow installs, starts and stops, like a database server.

The server (``label-studio==1.23.2``) pins ~150 packages (Django), so it lives in its own venv:
``~/.cache/juryflow/labelstudio-<version>`` (or ``$JURYFLOW_LABELSTUDIO_VENV``), shared by every data dir.
Layout under ``<data_dir>/labelstudio/``:

    credentials.json  (0600) Django secret key, admin login and API token, generated once
    data/             Label Studio's own data dir (SQLite database, uploads)
    server.json       pid, port and url of the running server
    server.log        (0600) the server's output

It binds 127.0.0.1 only. To let people on other machines label, put it behind a reverse proxy
with TLS, or start it with ``host="0.0.0.0"`` deliberately (see ``juryflow labelstudio up --help``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

LABEL_STUDIO_VERSION = "1.23.2"
VENV_ENV_VAR = "JURYFLOW_LABELSTUDIO_VENV"
ADMIN_EMAIL = "admin@juryflow.local"
# Label Studio moves to port+1 silently when the port is taken; this line says where it went.
_STARTED_AT = re.compile(r"Starting development server at (http://[^/\s]+)/")


class LabelStudioServerError(RuntimeError):
    """The local Label Studio server could not be installed, started or reached."""


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def default_venv() -> Path:
    """$JURYFLOW_LABELSTUDIO_VENV, else one venv per machine and version under the user's cache,
    shared by every data dir (like a database server install: ~1 GB, so not one per project)."""
    env = os.environ.get(VENV_ENV_VAR)
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "juryflow" / f"labelstudio-{LABEL_STUDIO_VERSION}"


def install_venv(venv: Path) -> Path:
    """Create the server venv with ``label-studio==1.23.2`` (uv when on PATH: ~10 s, else pip: ~2 min)."""
    exe = venv / "bin" / "label-studio"
    if exe.exists():
        return exe
    requirement = f"label-studio=={LABEL_STUDIO_VERSION}"
    uv = shutil.which("uv")
    if uv:
        steps = [[uv, "venv", "-q", "-p", sys.executable, str(venv)],
                 # Compiled once here, not in every server start (uv does not compile by default).
                 [uv, "pip", "install", "-q", "--compile-bytecode",
                  "--python", str(venv / "bin" / "python"), requirement]]
    else:
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", requirement]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise LabelStudioServerError(
                f"installing {requirement} into {venv} failed at `{' '.join(cmd)}`:\n{done.stderr[-2000:]}\n"
                f"Fix the error above, or install it yourself and set {VENV_ENV_VAR} to that venv."
            )
    return exe


class LabelStudioServer:
    """One local Label Studio server: ``LabelStudioServer(data_dir, port).start()``, ``.url``, ``.token``."""

    def __init__(self, data_dir: Path | str, port: int = 8080, host: str = "127.0.0.1", venv: Path | None = None):
        self.root = Path(data_dir).resolve() / "labelstudio"
        self.port = port
        self.host = host
        self.venv = (Path(venv) if venv else default_venv()).resolve()
        self.credentials_path = self.root / "credentials.json"
        self.state_path = self.root / "server.json"
        self.log_path = self.root / "server.log"

    # --- credentials -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        """Secret key, admin login and API token: generated on first use, then read back."""
        if self.credentials_path.is_file():
            return json.loads(self.credentials_path.read_text())
        creds = {
            # token_hex never starts with `$` (Label Studio would read that as an env reference).
            "secret_key": secrets.token_hex(32),
            "username": ADMIN_EMAIL,
            "password": secrets.token_urlsafe(18),
            "token": secrets.token_hex(20),
        }
        write_private(self.credentials_path, json.dumps(creds, indent=2))
        return creds

    @property
    def token(self) -> str:
        return self.credentials()["token"]

    @property
    def url(self) -> str:
        state = self._state()
        return state["url"] if state else f"http://{self._client_host}:{self.port}"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host

    def _environment(self) -> dict[str, str]:
        """A clean environment: unprefixed HOST, PORT or USERNAME would leak into Label Studio's settings."""
        creds = self.credentials()
        data = self.root / "data"
        return {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            # Unbuffered, so the "Starting development server at" line reaches the log at once.
            "PYTHONUNBUFFERED": "1",
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "DJANGO_DB": "sqlite",
            "SECRET_KEY": creds["secret_key"],
            "LABEL_STUDIO_USERNAME": creds["username"],
            "LABEL_STUDIO_PASSWORD": creds["password"],
            "LABEL_STUDIO_USER_TOKEN": creds["token"],
            # Legacy tokens are fixed when the organisation is first created; we use the `Token` scheme.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }

    # --- lifecycle ---------------------------------------------------------------------------
    def _state(self) -> dict | None:
        if not self.state_path.is_file():
            return None
        state = json.loads(self.state_path.read_text())
        return state if _alive(state.get("pid")) else None

    def healthy(self, timeout: float = 2.0) -> bool:
        state = self._state()
        if state is None:
            return False
        try:
            return httpx.get(f"{state['url']}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout_s: float = 240.0) -> LabelStudioServer:
        """Start the server (installing its venv first if needed) and wait until /health answers.

        A fresh data dir takes 50-60 s of database migrations; a restart takes 5-9 s.
        """
        if self.healthy():
            return self
        exe = install_venv(self.venv)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        cmd = [str(exe), "start", "--no-browser", "--internal-host", self.host, "--port", str(self.port),
               "--data-dir", str(self.root / "data")]
        proc = subprocess.Popen(cmd, env=self._environment(), stdout=fd, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.root, start_new_session=True)
        os.close(fd)
        deadline = time.monotonic() + timeout_s
        url = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabelStudioServerError(
                    f"Label Studio exited with code {proc.returncode} while starting; see {self.log_path}"
                )
            if url is None:
                found = _STARTED_AT.search(self.log_path.read_text(errors="replace"))
                if found:
                    url = found.group(1).replace("0.0.0.0", "127.0.0.1")
                    self.state_path.write_text(json.dumps({"pid": proc.pid, "url": url, "host": self.host}))
            if url is not None and self.healthy():
                return self
            time.sleep(0.5)
        self._kill(proc.pid)
        raise LabelStudioServerError(
            f"Label Studio did not answer {url or self.url}/health within {timeout_s:.0f} s; see {self.log_path}"
        )

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop the server; False when none was running."""
        state = self._state()
        self.state_path.unlink(missing_ok=True)
        if state is None:
            return False
        self._kill(state["pid"], timeout_s)
        return True

    @staticmethod
    def _kill(pid: int, timeout_s: float = 20.0) -> None:
        # The server runs in its own session: signal its whole process group (it forks workers).
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)

    def add_annotator(self, email: str, password: str | None = None) -> str:
        """Create a login for one annotator and return its password (generated when not given).

        The users API does not set passwords, so this uses Label Studio's own `reset_password` command.
        """
        from labeling.labelstudio.client import LabelStudioClient

        password = password or secrets.token_urlsafe(12)
        client = LabelStudioClient(self.url, self.token)
        if not any(u.email == email for u in client.call("listing users", lambda: list(client.sdk.users.list()))):
            client.call(f"creating user {email}", client.sdk.users.create, username=email.split("@")[0], email=email)
        # `--password=...` in one word: a generated password can start with "-", which argparse
        # would take for an option (exit 2) if it stood on its own.
        cmd = [str(self.venv / "bin" / "label-studio"), "reset_password", f"--username={email}",
               f"--password={password}", "--data-dir", str(self.root / "data")]
        done = subprocess.run(cmd, env=self._environment(), cwd=self.root, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0 or "not found" in done.stdout:
            raise LabelStudioServerError(f"setting the password of {email} failed (exit {done.returncode}); "
                                         f"see `label-studio reset_password --help`")
        return password

    def status(self) -> dict[str, object]:
        state = self._state()
        return {"running": state is not None, "healthy": self.healthy(), "url": self.url,
                "pid": state["pid"] if state else None, "data_dir": str(self.root / "data")}


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_in_settings_file(path: Path, url: str, token: str) -> None:
    """Set labelstudio.url and labelstudio.api_key in the YAML settings file, keeping every other key.

    The file then holds a secret, so it is (re)written readable by its owner only.
    """
    import yaml

    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    data = data if isinstance(data, dict) else {}
    section = data.get("labelstudio") if isinstance(data.get("labelstudio"), dict) else {}
    data["labelstudio"] = {**section, "url": url, "api_key": token}
    write_private(path, yaml.safe_dump(data, sort_keys=False))
