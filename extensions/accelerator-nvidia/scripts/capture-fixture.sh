#!/bin/sh
# Runs exactly the nvidia-smi commands the detector runs and keeps their raw output, so a real
# machine's answers can become test fixtures: capture-fixture.sh <folder>
set -u
out="${1:?usage: capture-fixture.sh <folder>}"
smi="${NVIDIA_SMI:-nvidia-smi}"
mkdir -p "$out"

capture() {
  name="$1"; shift
  "$smi" "$@" >"$out/$name.stdout" 2>"$out/$name.stderr"
  echo "$?" >"$out/$name.exit"
}

capture query --query-gpu=index,name,uuid,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,driver_version,compute_cap --format=csv,noheader,nounits
capture version --version
capture header

{
  echo "captured: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm)"
  echo "tool: $(command -v "$smi" || echo "$smi not found")"
} >"$out/README.txt"
echo "wrote $(ls "$out" | wc -l) files to $out"
