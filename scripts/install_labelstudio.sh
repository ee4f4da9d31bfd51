#!/usr/bin/env bash
# Install the Label Studio server (label-studio==1.23.2) into its own venv, as `juryflow labelstudio up`
# and the integration tests do on first use; CI runs this once and caches the venv.
#   scripts/install_labelstudio.sh [VENV]     (default: $JURYFLOW_LABELSTUDIO_VENV or .venv-labelstudio)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${JURYFLOW_LABELSTUDIO_VENV:-.venv-labelstudio}}"
.venv/bin/python -c "import sys; from pathlib import Path; from labeling.labelstudio.server import install_venv; print(install_venv(Path(sys.argv[1]).resolve()))" "$VENV"
