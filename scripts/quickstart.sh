#!/usr/bin/env bash
# Quick start (the README's main command, ~10 minutes on 2 cores): set up (first time), validate the specs,
# pretrain BYOL-A with the `smoke` recipe on the embedded
# corpus (from scratch), score it beside its random twin (byola-smoke-init, the same network at step 0) and the log-mel baselines on the embedded synthetic suite
# (recomputing every record, so a fresh machine reproduces the committed numbers) and regenerate
# results/leaderboard.{md,csv,png}.  ./run_all.sh is the full regeneration (every method, ~35 minutes).
# ENCODERS=... TASKS=... PRETRAIN=0 scripts/quickstart.sh [extra `evalbench run` flags, e.g. --seeds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ENCODERS=${ENCODERS:-byola-smoke,byola-smoke-init,logmel,randproj}
TASKS=${TASKS:-synth}
.venv/bin/evalbench tasks validate
.venv/bin/evalbench encoders validate
if [ "${PRETRAIN:-1}" = 1 ]; then
  .venv/bin/evalbench pretrain byola --preset smoke --monitor synth_pitch --restart
fi
.venv/bin/evalbench run --encoder "$ENCODERS" --tasks "$TASKS" --overwrite "$@"
.venv/bin/evalbench leaderboard --ci --plot --significance
