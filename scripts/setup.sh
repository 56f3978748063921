#!/usr/bin/env bash
# Create .venv and install evalbench (editable) with its pinned PyTorch stack.
# Idempotent: a stamp records what was installed; a second run is a no-op.
# Override the interpreter with PYTHON=python3.12, the torch stack with TORCH_SPEC="...".
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0"}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: evalbench needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

want="$(sha256sum pyproject.toml | cut -c1-16) ${TORCH_SPEC}"
if [ "$(cat .venv/.evalbench-setup 2>/dev/null)" != "$want" ]; then
  echo "setup: installing ${TORCH_SPEC} and evalbench into .venv (first time: a few minutes)"
  pip_install() {
    if ! .venv/bin/pip install --quiet --disable-pip-version-check "$@" > .venv/setup.log 2>&1; then
      grep -v "is ignored: it is neither" .venv/setup.log >&2 || true
      echo "setup: 'pip install $*' failed (log above)" >&2
      exit 1
    fi
  }
  # shellcheck disable=SC2086
  pip_install $TORCH_SPEC
  pip_install -e '.[dev]'
  .venv/bin/python -c 'import torch, torchaudio, evalbench' || { echo "setup: import check failed" >&2; exit 1; }
  echo "$want" > .venv/.evalbench-setup
fi
