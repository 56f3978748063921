#!/usr/bin/env bash
# Full regeneration of the committed leaderboard (~35 minutes on 2 CPU cores; the README's quick start,
# scripts/quickstart.sh, is the 10-minute BYOL-A-only version):
#   1. set up (first time) and validate every spec;
#   2. pretrain every method from scratch with its `smoke` recipe: BYOL-A, MSN, CLAR and CLMR on the embedded
#      corpus (disjoint from every evaluation clip by construction, and checked), and the supervised `cnn`
#      baseline on the training split of synth_pitch (its test clips are never read);
#   3. score each beside its random twin (`<name>-init`, the same network at step 0, registered by the same
#      pretraining run), `logmel` and `randproj` on the embedded synthetic suite, recomputing
#      every record (--overwrite), so a fresh machine reproduces the committed numbers;
#   4. regenerate results/leaderboard.{md,csv,png}.
# Each pretraining run writes its loss curve (loss.png) and kNN monitor curve (monitor.png) beside its checkpoint in
# encoders/checkpoints/pretrain/<name>/.
# METHODS="byola msn" TASKS=... ./run_all.sh [extra `evalbench run` flags, e.g. --seeds 5]
# KEEP="byola clmr" scores those methods' existing <method>-smoke encoders without pretraining them again.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
METHODS=${METHODS:-byola msn clar clmr supervised}
TASKS=${TASKS:-synth}
EB=.venv/bin/evalbench
$EB tasks validate
$EB encoders validate
encoders=logmel,randproj
for method in $METHODS; do
  start=$(date +%s)
  case $method in
    supervised)
      trained=sup-cnn-smoke
      args=(--arch cnn --task synth_pitch --name "$trained")
      ;;
    *)
      trained=$method-smoke
      args=()
      ;;
  esac
  if [[ " ${KEEP:-} " != *" $method "* ]]; then
    $EB pretrain "$method" --preset smoke --monitor synth_pitch --restart "${args[@]}"
    echo "run_all: pretrain $method took $(( $(date +%s) - start )) s"
  fi
  encoders=$encoders,$trained,$trained-init  # <name>-init: the same network at step 0, its random twin
done
start=$(date +%s)
$EB run --encoder "$encoders" --tasks "$TASKS" --overwrite "$@"
echo "run_all: scoring took $(( $(date +%s) - start )) s"
$EB leaderboard --ci --plot --significance  # cells: mean [95 % bootstrap interval]; best in bold, ≈ not significantly different; a PNG per suite
