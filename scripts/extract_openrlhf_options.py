"""Extract the command-line options of a pinned OpenRLHF release into a JSON file juryflow checks commands against.

    uv venv /tmp/openrlhf-venv && VIRTUAL_ENV=/tmp/openrlhf-venv uv pip install --no-deps openrlhf==0.11.2
    .venv/bin/python scripts/extract_openrlhf_options.py \
        /tmp/openrlhf-venv/lib/python3.11/site-packages/openrlhf/cli/train_ppo_ray.py \
        models/training/external/openrlhf_0.11.2_train_ppo_ray_options.json

OpenRLHF builds its parser inside ``if __name__ == "__main__":`` (and partly in loops over
"actor"/"critic"), so neither importing the module nor a plain scan of ``add_argument`` calls
gives the option list. This script parses the file, keeps the statements of that block up to
``args = parser.parse_args()`` (which only build the parser: argparse and datetime), runs them
without OpenRLHF's heavy imports (ray, deepspeed, vllm), and writes every option's name,
type, nargs, choices and whether it is a flag.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from datetime import datetime
from pathlib import Path


def parser_statements(source: str) -> list[ast.stmt]:
    """The statements of ``if __name__ == "__main__":`` before ``args = parser.parse_args()``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            statements = []
            for stmt in node.body:
                if "parse_args(" in ast.unparse(stmt):
                    return statements
                statements.append(stmt)
    raise SystemExit("no `if __name__ == '__main__':` block ending in parser.parse_args() found: is this train_ppo_ray.py?")


def build_parser(source: str) -> argparse.ArgumentParser:
    module = ast.Module(body=parser_statements(source), type_ignores=[])
    namespace: dict = {"argparse": argparse, "datetime": datetime, "__name__": "openrlhf_options"}
    exec(compile(module, "train_ppo_ray.py", "exec"), namespace)  # noqa: S102 - the pinned release's own parser code
    return namespace["parser"]


def describe(parser: argparse.ArgumentParser) -> dict[str, dict]:
    options = {}
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._StoreConstAction)
        entry = {
            "dest": action.dest,
            "flag": flag,
            "type": None if flag else getattr(action.type, "__name__", "str"),
            "nargs": action.nargs,
            "choices": list(action.choices) if action.choices else None,
        }
        for name in action.option_strings:
            options[name] = entry
    return options


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: extract_openrlhf_options.py PATH/TO/openrlhf/cli/train_ppo_ray.py OUT.json")
    script, out = Path(argv[0]), Path(argv[1])
    version_file = script.parents[2] / "openrlhf" / "version.txt"
    dist = sorted(script.parents[2].glob("openrlhf-*.dist-info"))
    version = dist[0].name.removeprefix("openrlhf-").removesuffix(".dist-info") if dist else version_file.read_text().strip()
    options = describe(build_parser(script.read_text(encoding="utf-8")))
    payload = {"openrlhf_version": version, "source": "openrlhf/cli/train_ppo_ray.py",
               "extracted_by": "scripts/extract_openrlhf_options.py", "options": options}
    out.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(options)} options of openrlhf {version} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
