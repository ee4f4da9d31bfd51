"""Check juryflow's OpenRLHF hand-off against the pinned wheel's own code (run when changing the pin).

    uv venv /tmp/openrlhf-venv && VIRTUAL_ENV=/tmp/openrlhf-venv uv pip install --no-deps openrlhf==0.11.2
    .venv/bin/python scripts/check_openrlhf_pin.py /tmp/openrlhf-venv/lib/python3.11/site-packages

Three checks, each with OpenRLHF's code rather than juryflow's reading of it (the wheel without
its dependencies: no ray, deepspeed or vllm is needed):
1. the launch-ppo arguments for recipes/ppo.yaml and recipes/test/ppo.yaml parse with the real
   train_ppo_ray parser (built by running the wheel's parser code, as extract_openrlhf_options.py does);
2. an export read by OpenRLHF's ``preprocess_data`` of reward_dataset.py and prompts_dataset.py
   gives the prompt, chosen and rejected texts (and the PPO prompt and label) expected;
3. OpenRLHF's own HTTP client (``SingleTurnAgentExecutor._fetch_rewards_via_http``) gets from
   ``serve-reward`` the rewards the reward model gives in-process.
The CI tests check the same things against the option table and the protocol as written down.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]


def functions_from(path: Path, names: set[str], namespace: dict) -> dict:
    """Top-level functions of a module, run without the module's (GPU-stack) imports."""
    body = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name in names]
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def check_parser(site: Path) -> None:
    from extract_openrlhf_options import build_parser

    from models.training.config import read_recipe
    from models.training.external.openrlhf_launch import ClusterShape, ppo_arguments, reward_url_for_launch

    source = (site / "openrlhf/cli/train_ppo_ray.py").read_text()
    for recipe in ("recipes/ppo.yaml", "recipes/test/ppo.yaml"):
        flat = read_recipe(REPO / recipe)
        flat.pop("__stage__", None)
        args = ppo_arguments(flat, "/data/prompts.jsonl", reward_url_for_launch("http://10.0.0.5:5000/get_reward"),
                             "/ckpt", ClusterShape())
        build_parser(source).parse_args(args)  # exits 2 with argparse's message on a bad argument
        print(f"1. {recipe}: {len(args)} arguments parse with openrlhf's train_ppo_ray parser")


def check_readers(site: Path, work: Path) -> None:
    from datasets import load_dataset

    from models.tiny import build_tokenizer
    from models.training.external.handoff import export_snapshot_for
    from tests.models.training.synthetic import preference_rows, write_snapshot

    helpers = {"copy": copy, "exist_and_not_none": lambda d, k: k in d and d[k] is not None}
    reward_pre = functions_from(site / "openrlhf/datasets/reward_dataset.py", {"preprocess_data"}, dict(helpers))
    prompt_pre = functions_from(site / "openrlhf/datasets/prompts_dataset.py",
                                {"preprocess_data", "_str_to_content_list"}, dict(helpers))
    rows = preference_rows(6, seed=1)
    manifest = export_snapshot_for("openrlhf", work, write_snapshot(work / "snapshots", rows))
    tokenizer = build_tokenizer(work / "tokenizer")
    pair = load_dataset("json", data_files=manifest["files"]["preferences"])["train"][0]
    prompt, chosen, rejected, _margin = reward_pre["preprocess_data"](pair, None, "prompt", "chosen", "rejected",
                                                                     tokenizer.apply_chat_template)
    assert rows[0]["prompt"] in prompt and chosen.startswith(rows[0]["chosen"]) and rejected.startswith(rows[0]["rejected"])
    ppo = load_dataset("json", data_files=manifest["files"]["prompts"])["train"][0]
    ppo_prompt, label = prompt_pre["preprocess_data"](ppo, None, "prompt", "label", tokenizer.apply_chat_template)
    assert label == rows[0]["prompt"] and ppo_prompt.endswith("<|assistant|>\n")
    print(f"2. openrlhf's preprocess_data reads the export: {prompt!r} + {chosen!r} / {rejected!r}; label {label!r}")


def check_client(site: Path, work: Path) -> None:
    from models.labelers.reward_model import RewardModelLabeler
    from models.serving.reward_server import RewardServerConfig, serve_registered_reward_model
    from models.tiny import build_tiny_reward_model
    from models.training.registry import Registry

    for package in ("openrlhf", "openrlhf.utils"):
        sys.modules.setdefault(package, types.ModuleType(package))
    load_module("openrlhf.utils.logging_utils", site / "openrlhf/utils/logging_utils.py")
    agent = load_module("openrlhf.utils.agent", site / "openrlhf/utils/agent.py")

    registry, version = Registry(work / "registry"), "check"
    build_tiny_reward_model(registry.model_dir("reward_model", version))
    registry.register("reward_model", version, snapshot_id=None, recipe={}, metrics={}, parent_model=None)
    server = serve_registered_reward_model(registry, version, RewardServerConfig(port=0, strip_suffixes=("<|end|>",)), "cpu")
    server.start()
    try:
        labeler = RewardModelLabeler(registry.model_dir("reward_model", version), device="cpu")
        labeler.load()
        prompts, responses = ["Name one of the colors.", "Say something about animals."], ["red", "I say cat."]
        templated = [labeler._tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                            add_generation_prompt=True) for p in prompts]
        queries = [t + r + "<|end|>" for t, r in zip(templated, responses, strict=True)]
        executor = agent.SingleTurnAgentExecutor(f"{server.url}/get_reward")
        answer = asyncio.run(executor._fetch_rewards_via_http(queries, templated, prompts))[0]
        expected = labeler.rewards([labeler.pair_text(p, r) for p, r in zip(prompts, responses, strict=True)])
        assert max(abs(a - b) for a, b in zip(answer["rewards"], expected, strict=True)) < 1e-5, (answer, expected)
        print(f"3. openrlhf's client got rewards {answer['rewards']} from serve-reward; in-process {expected}")
    finally:
        server.close()


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: check_openrlhf_pin.py PATH/TO/site-packages (with openrlhf installed --no-deps)")
    site = Path(argv[0])
    if not (site / "openrlhf/cli/train_ppo_ray.py").is_file():
        raise SystemExit(f"no openrlhf/cli/train_ppo_ray.py under {site}: install openrlhf==0.11.2 --no-deps there")
    with tempfile.TemporaryDirectory() as tmp:
        check_parser(site)
        check_readers(site, Path(tmp) / "readers")
        check_client(site, Path(tmp) / "client")


if __name__ == "__main__":
    main(sys.argv[1:])
