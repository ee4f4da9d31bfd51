#!/usr/bin/env bash
# Sets up juryflow from scratch on a fresh machine. Idempotent: fast when already set up.
#
#   bash scripts/setup.sh           # the app venv (.venv) only: enough for `juryflow demo`
#   bash scripts/setup.sh --test    # plus everything the full test suite runs against:
#                                   # PostgreSQL and Chromium (Debian packages), the Label Studio
#                                   # server venv and the vLLM (CPU) venv
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q uv
fi

# uv does not read pip's config: point it at the local wheel folder so torch==2.13.0 resolves
# to the CPU build on disk instead of a multi-GB CUDA download.
FIND_LINKS=()
for d in /opt/wheels $(pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p"); do
  [[ -d "$d" ]] && FIND_LINKS+=(--find-links "$d")
done
export JURYFLOW_UV_FIND_LINKS="${FIND_LINKS[*]:-}"

# Compile every installed module to bytecode once, here, rather than in every process that imports
# it. uv does not compile by default, and where PYTHONDONTWRITEBYTECODE is set (this project's
# machines set it) Python never caches what it compiles either: each `import torch, transformers,
# prefect` then recompiled ~28,000 files (12.5 s instead of 4.2 s) and each `vllm serve` took 89 s
# to come up instead of 36 s. UV_COMPILE_BYTECODE covers every venv uv builds below (the vLLM and
# Label Studio ones too); compile_venv_once covers venvs built before this line existed.
export UV_COMPILE_BYTECODE=1
# compile_venv_once VENV EXISTED: EXISTED=0 means this run built VENV, so uv compiled it already.
compile_venv_once() {
  local venv=$1 existed=$2 stamp=$1/.juryflow-bytecode
  [[ -x "$venv/bin/python" && ! -f "$stamp" ]] || return 0
  [[ $existed == 0 ]] && { touch "$stamp"; return 0; }
  # rc is ignored: a few packages ship template .py files that are not valid Python.
  "$venv/bin/python" -m compileall -q -j 0 \
    "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1 || true
  touch "$stamp"
}

APP_EXISTED=1
if [[ ! -x .venv/bin/python ]]; then
  uv venv -q -p "$PYTHON" .venv
  APP_EXISTED=0
fi
# constraints/overrides.txt: prefect 3.9.1 wants certifi>=2026.10.19, which the registry lacks.
VIRTUAL_ENV=.venv uv pip install -q "${FIND_LINKS[@]}" --override constraints/overrides.txt -e ".[test]"
compile_venv_once .venv $APP_EXISTED

if [[ $WITH_TEST == 1 ]]; then
  need_apt=()
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  if (( ${#need_apt[@]} )); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  ls_venv=$(.venv/bin/python -c 'from labeling.labelstudio.server import default_venv; print(default_venv())')
  vllm_venv=${VLLM_VENV:-.venv-vllm}
  ls_existed=0 vllm_existed=0
  [[ -x "$ls_venv/bin/python" ]] && ls_existed=1
  [[ -x "$vllm_venv/bin/python" ]] && vllm_existed=1
  bash scripts/install_labelstudio.sh >/dev/null   # the Label Studio server, in its own venv
  bash scripts/setup_vllm_venv.sh                   # vLLM (CPU build), in its own venv
  compile_venv_once "$ls_venv" $ls_existed
  compile_venv_once "$vllm_venv" $vllm_existed
fi
echo "juryflow is set up in .venv"
