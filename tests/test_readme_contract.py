"""The README as an executable contract: every command it shows a user runs, as typed, and works.

    .venv/bin/python -m pytest tests/test_readme_contract.py -x -q

The commands and how each one is checked live in tests/readme_commands.yaml (its header gives the
rule for which README lines count as commands). `test_every_readme_command_is_listed` fails when the
README shows a command the list lacks, or the list keeps one the README dropped;
`JURYFLOW_README=<file>` and `JURYFLOW_README_COMMANDS=<file>` check copies instead (to see it fail on purpose).
`test_readme_command` then runs each entry in order, as a subprocess in a fresh directory that looks
like a checkout (`.venv`, `recipes/`, `prefect.yaml`... linked from this repository), sharing one
data dir, so state flows from the demo to status, export, training and deployment.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
# JURYFLOW_README / JURYFLOW_README_COMMANDS point at edited copies, e.g. to watch a broken command fail.
COMMANDS_FILE = Path(os.environ.get("JURYFLOW_README_COMMANDS") or Path(__file__).with_name("readme_commands.yaml"))
# What a fresh checkout holds that README commands name by relative path. Not scripts/: setup.sh
# cds to its own parent, and run through a link it would install the package from the copy.
LINKED = (".venv", ".venv-vllm", "flows", "tasks", "labeling", "models", "juryflow", "recipes", "automations",
          "prefect.yaml", "juryflow.example.yaml", "tests", "benchmarks")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")
# Inline code that counts as a command: the command line, and Prefect commands with a subcommand.
INLINE_COMMAND = re.compile(r"^(\.venv/bin/)?juryflow [a-z]|^prefect [a-z-]+ [a-z]")
PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")  # {name}; ${VAR} is left to the shell


# ---------------------------------------------------------------- which README lines are commands


def _strip_comment(line: str) -> str:
    """The command part of a shell line: everything before an unquoted ` #`."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(text: str) -> list[str]:
    """Every command a user is shown: the lines of ```bash blocks and the inline code that looks like one."""
    commands: list[str] = []
    in_bash = in_block = False
    pending = ""
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence:
            if in_block:
                in_block = in_bash = False
            else:
                in_block, in_bash = True, fence.group(2) == "bash"
            continue
        if in_bash:
            code = _strip_comment(line.strip())
            if code.endswith("\\"):  # a continued line: join it with the next
                pending += code[:-1].rstrip() + " "
                continue
            code = (pending + code).strip()
            pending = ""
            if code:
                commands.append(re.sub(r"\s+", " ", code))
        elif not in_block:
            commands.extend(span.strip() for span in INLINE.findall(line) if INLINE_COMMAND.match(span.strip()))
    return list(dict.fromkeys(commands))


def load_entries(path: Path = COMMANDS_FILE) -> list[dict]:
    entries = yaml.safe_load(path.read_text())["entries"]
    for entry in entries:
        entry["readme"] = [entry["readme"]] if isinstance(entry["readme"], str) else entry["readme"]
        if ("run" in entry) == ("not_run" in entry):
            raise ValueError(f"{path.name}: entry {entry['id']!r} needs exactly one of run / not_run")
    return entries


def contract_problems(readme_text: str, entries: list[dict]) -> list[str]:
    """One line per README command without an entry, and per entry whose README command is gone."""
    shown = readme_commands(readme_text)
    listed = {cmd for entry in entries for cmd in entry["readme"]}
    problems = [f"README shows `{cmd}` but {COMMANDS_FILE.name} has no entry for it: add one" for cmd in shown
                if cmd not in listed]
    problems += [f"{COMMANDS_FILE.name} entry {e['id']!r} lists `{cmd}`, which the README no longer shows: "
                 "update or drop it" for e in entries for cmd in e["readme"] if cmd not in shown]
    return problems


def test_every_readme_command_is_listed():
    readme = Path(os.environ.get("JURYFLOW_README", REPO / "README.md"))
    problems = contract_problems(readme.read_text(), load_entries())
    assert not problems, f"{readme}:\n" + "\n".join(problems)


def test_checker_catches_a_changed_or_new_command():
    entries = load_entries()
    readme = (REPO / "README.md").read_text()
    assert contract_problems(readme.replace(".venv/bin/juryflow export ", ".venv/bin/juryflow export --all "), entries)
    extra = readme.replace("## Quickstart\n\n```bash\n", "## Quickstart\n\n```bash\njuryflow frobnicate  # new\n")
    assert any("`juryflow frobnicate`" in p for p in contract_problems(extra, entries))
    prose = readme + "\nThen run `juryflow models prune --all` to tidy up.\n"
    assert any("`juryflow models prune --all`" in p for p in contract_problems(prose, entries))


def test_command_parsing_rules():
    text = ("```bash\nfoo --x 1 \\\n    --y \"a # b\"   # comment\n# only a comment\n\n```\n"
            "```\nnot bash\n```\n`juryflow status` and `prefect.yaml` and `prefect server start`\n")
    assert readme_commands(text) == ['foo --x 1 --y "a # b"', "juryflow status", "prefect server start"]


# ---------------------------------------------------------------- running the entries


class Contract:
    """The shared state of one run of the list: the user's directory, environment, captured values, servers."""

    def __init__(self, root: Path):
        self.user = root / "checkout"
        self.user.mkdir()
        for name in LINKED:
            if (REPO / name).exists():
                (self.user / name).symlink_to(REPO / name)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("JURYFLOW", "PREFECT_API", "PREFECT_PROFILES", "VIRTUAL_ENV"))}
        self.env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                        PREFECT_HOME=str(root / "prefect-home"))
        for key in ("JURYFLOW_TEST_PG_URL", "JURYFLOW_LABELSTUDIO_VENV", "JURYFLOW_LS_TEMPLATE_DIR"):
            if key in os.environ:
                self.env[key] = os.environ[key]
        self.values: dict[str, str] = {"repo": str(REPO), "port": str(free_port())}
        self.failed: set[str] = set()
        self.servers: dict[str, subprocess.Popen] = {}

    def fill(self, text: str, entry_id: str) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1)
            if name not in self.values:
                pytest.fail(f"entry {entry_id!r} needs {{{name}}}, which no earlier entry captured "
                            f"(failed before: {sorted(self.failed) or 'none'})")
            return self.values[name]
        return PLACEHOLDER.sub(value, text)

    def command(self, entry: dict, text: str) -> list[str]:
        script = self.fill(text, entry["id"])
        if entry.get("activate"):  # the README's bare `juryflow`, `python`, `prefect`: an activated venv
            script = f"source .venv/bin/activate && {script}"
        return ["bash", "-c", f"set -eo pipefail; {script}"]

    def cwd(self, entry: dict) -> Path:
        return REPO if entry.get("cwd") == "repo" else self.user

    def prepare(self, entry: dict) -> None:
        if "prepare" in entry:
            out = subprocess.run(self.command(entry, entry["prepare"]), cwd=self.cwd(entry), env=self.env,
                                 capture_output=True, text=True, timeout=entry.get("timeout", 300))
            if out.returncode != 0:
                pytest.fail(f"preparing {entry['id']!r} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}", pytrace=False)

    def run(self, entry: dict) -> str:
        env = {**self.env, **{k: self.fill(str(v), entry["id"]) for k, v in entry.get("env", {}).items()}}
        args = self.command(entry, entry["run"])
        if "until" in entry:
            return self._serve(entry, args, env)
        try:
            out = subprocess.run(args, cwd=self.cwd(entry), env=env, capture_output=True, text=True,
                                 timeout=entry.get("timeout", 300))
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{entry['id']}: `{entry['run']}` ran past {exc.timeout} s")
        output = out.stdout + out.stderr
        if out.returncode != entry.get("exit", 0):
            pytest.fail(f"{entry['id']}: `{entry['run']}` exited {out.returncode}, expected {entry.get('exit', 0)}:\n"
                        + output[-4000:], pytrace=False)
        return output

    def _serve(self, entry: dict, args: list[str], env: dict) -> str:
        """Start a long-running command, wait for its readiness line, then stop it or keep it for later."""
        proc = subprocess.Popen(args, cwd=self.cwd(entry), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        ready, deadline = re.compile(entry["until"]), time.monotonic() + entry.get("timeout", 120)
        while not any(ready.search(line) for line in list(lines)):
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                pytest.fail(f"{entry['id']}: `{entry['run']}` never printed /{entry['until']}/ "
                            f"({'exited ' + str(proc.returncode) if proc.returncode is not None else 'timed out'}):\n"
                            + "".join(lines)[-4000:])
            time.sleep(0.5)
        if entry.get("keep"):
            self.servers[entry["keep"]] = proc
        else:
            _stop(proc)
        return "".join(lines)

    def stop(self, name: str) -> None:
        if name in self.servers:
            _stop(self.servers.pop(name))

    def close(self) -> None:
        for name in list(self.servers):
            self.stop(name)
        # A Label Studio that `labelstudio up` left running must not outlive the test.
        subprocess.run(["bash", "-c", "source .venv/bin/activate && juryflow labelstudio down"],
                       cwd=self.user, env=self.env, capture_output=True, timeout=120)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a hung shutdown must not outlive the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _seed_labelstudio(contract: Contract, entry: dict) -> None:
    """Copy a migrated Label Studio database into the data dir, as the Label Studio tests do (~1 min saved)."""
    from tests.labeling.labelstudio.conftest import build_template
    from labeling.labelstudio.server import default_venv

    # The data dir `juryflow labelstudio up` will use: its own ./juryflow.yaml's, never the demo's
    # (cli_labelstudio.up drops the demo default). Seeding the demo's dir instead left `up` to migrate
    # a fresh database: a minute of wall time and CPU.
    script = "from labeling.settings import load_settings\nprint(load_settings().data_dir)"
    out = subprocess.run([".venv/bin/python", "-c", script], cwd=contract.user, env=contract.env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    target = (contract.user / out.stdout.strip().splitlines()[-1]) / "labelstudio"
    if not (target / "data").exists():
        shutil.copytree(build_template(default_venv()) / "labelstudio", target)


ENTRIES = load_entries()


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    state = Contract(tmp_path_factory.mktemp("readme"))
    yield state
    state.close()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_readme_command(entry, contract):
    if "not_run" in entry:
        pytest.skip(f"not run here: {entry['not_run']}")
    try:
        if entry.get("seed_labelstudio"):
            _seed_labelstudio(contract, entry)
        contract.prepare(entry)
        output = contract.run(entry)
        for pattern in [entry["expect"]] if isinstance(entry.get("expect"), str) else entry.get("expect", []):
            if not re.search(pattern, output, re.MULTILINE):
                pytest.fail(f"{entry['id']}: output of `{entry['run']}` lacks /{pattern}/:\n{output[-4000:]}", pytrace=False)
        for name, pattern in entry.get("capture", {}).items():
            found = re.search(pattern, output, re.MULTILINE)
            if not found:
                pytest.fail(f"{entry['id']}: could not read {name} (/{pattern}/) from:\n{output[-4000:]}", pytrace=False)
            contract.values[name] = found.group(1)
    except BaseException:
        contract.failed.add(entry["id"])
        raise
    finally:
        if "stop" in entry:
            contract.stop(entry["stop"])
