#!/usr/bin/env bash
# Realization and recovery of the generic operators, per task, policy and continuation
# (docs/recovery.md). Usage: tools/measure_recovery.sh OUT_DIR BC_MODELS_DIR
# BC_MODELS_DIR holds <task>_mlp_<demos> checkpoints (simfail train-policy); the largest is used.
set -euo pipefail
out=$1; models=$2
mkdir -p "$out"
ops="[gripper_release,action_offset,freeze,speedup,jitter,delay,truncate,push]"
for task in pick_place stack tool_use push_pull open_close reorient pour; do
  for cont in open_loop closed_loop; do
    simfail rollout policy=expert task=$task seeds=3 samples=1 seed=0 perturb=$ops continuation=$cont \
      render=false progress=false json="$out/expert_${task}_${cont}.json" > "$out/expert_${task}_${cont}.txt"
    ckpt=$(ls -d "$models/${task}"_mlp_* 2>/dev/null | awk -F_ '{print $NF" "$0}' | sort -n | tail -1 | cut -d' ' -f2- || true)
    if [ -n "$ckpt" ]; then
      simfail rollout policy=bc policy.checkpoint="$ckpt" task=$task seeds=3 samples=1 seed=10000 perturb=$ops \
        continuation=$cont render=false progress=false json="$out/bc_${task}_${cont}.json" > "$out/bc_${task}_${cont}.txt"
    fi
  done
done
python tools/recovery_table.py "$out"/*.json
