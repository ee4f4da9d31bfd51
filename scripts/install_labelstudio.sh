#!/usr/bin/env bash
# Install the Label Studio server (label-studio==1.23.2) into its own venv, as `juryflow labelstudio up`
# and the integration tests do on first use; CI runs this once and caches the venv.
#   scripts/install_labelstudio.sh [VENV]     (default: $JURYFLOW_LABELSTUDIO_VENV or ~/.cache/juryflow/labelstudio-<version>)
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c "import sys; from pathlib import Path; from labeling.labelstudio.server import default_venv, install_venv; print(install_venv((Path(sys.argv[1]) if sys.argv[1:] else default_venv()).resolve()))" "$@"
