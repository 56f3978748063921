#!/usr/bin/env bash
# Quick start: set up (first time), validate the specs, score the encoders on the
# embedded synthetic suite (recomputing their records, so a fresh machine reproduces
# the committed numbers) and regenerate results/leaderboard.{md,csv,png}.
# ENCODERS=... TASKS=... ./run_all.sh [extra `evalbench run` flags, e.g. --seeds 5]
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
ENCODERS=${ENCODERS:-logmel,randproj}
TASKS=${TASKS:-synth}
.venv/bin/evalbench tasks validate
.venv/bin/evalbench encoders validate
.venv/bin/evalbench run --encoder "$ENCODERS" --tasks "$TASKS" --overwrite "$@"
.venv/bin/evalbench leaderboard
