#!/usr/bin/env bash
# The GPU session plan (benches/NOTES.md) for the device tool: `all` runs every section in one call of
# at most 9 minutes, each section under its own deadline (a slow one is cut, recorded as such, and the
# rest still run). Builds the CUDA extension for this GPU's architecture only, when it is not built yet.
# Results go under <out>/<device>/ (default $OUT, which the device tool fetches); commit them under
# benches/results/<device>/.
#   bash benches/gpu_session.sh all [out]           # everything below, deadlines summing under 9 minutes
#   bash benches/gpu_session.sh all --smoke [out]   # the same script on the CPU, tiny settings (no GPU)
#   bash benches/gpu_session.sh test | fused | decode | gated | focus | vllm   # one section, no deadline
# Wheels a GPU image lacks (liger-kernel for the focus step's comparison) travel in .whl/ (see
# /work/.library/device/README.md) and are installed here before anything runs.
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?"which step: all [--smoke] | test | fused | decode | gated | focus | vllm"}
shift
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out=${1:-${OUT:-/tmp/steerkit-gpu-out}}
export STEERKIT_COMMIT=${STEERKIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
py=${PYTHON:-python3}

if [ "$smoke" = 1 ]; then
  device=cpu-smoke
  export TRITON_INTERPRET=1
else
  if ! $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_session.sh: no CUDA GPU visible; run 'all --smoke' for the CPU smoke run" >&2
    exit 2
  fi
  device=$($py -c "import torch; n = torch.cuda.get_device_name(0).lower(); print(next((k for k in ('h200', 'h100', 'a100', 'l40s') if k in n), n.split()[-1]))")
fi
dir="$out/$device"
mkdir -p "$dir"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

build() {
  if [ "$smoke" = 1 ] || $py -c "import steerkit._C_cuda" 2>/dev/null; then return 0; fi
  arch=$($py -c "import torch; m, n = torch.cuda.get_device_capability(0); print(f'{m}{n}')")
  STEERKIT_CUDA=1 STEERKIT_CUDA_ARCHS=$arch $py -m pip install -q --no-build-isolation --no-deps -e .
}

# the kernel tests that differ on a GPU: every backend against the reference, opcheck, graphs, fused ops
GPU_TESTS="tests/test_gated_steer_backends.py tests/test_fused_ops.py tests/test_opcheck.py tests/test_gpu_graphs.py
  tests/test_lora_fused.py tests/test_backends_and_info.py tests/test_gated_steer_op.py"

run_step() {  # one section's command, by name
  case "$1" in
    build)  build ;;
    info)   $py -c "import json, steerkit; f = steerkit.info(print_it=True); open('$dir/info.json', 'w').write(json.dumps(f, indent=1, default=str))" ;;
    test)   if [ "$smoke" = 1 ]; then $py -m pytest -q -rs tests/test_opcheck.py tests/test_backends_and_info.py
            else $py -m pytest -q -rs $GPU_TESTS; fi ;;
    gated)  if [ "$smoke" = 1 ]; then $py benches/gpu_gated_steer.py --device cpu --n 1 64 --d 256 --k 1 16 --out "$dir/gated"
            else $py benches/gpu_gated_steer.py --out "$dir/gated"; fi ;;
    fused)  if [ "$smoke" = 1 ]; then $py benches/gpu.py --device cpu --preset tiny --out "$dir/fused" --sections fused prefill \
                                         --fused-n 1 8 --prefill-tokens 32 --reps 1
            else $py benches/gpu.py --out "$dir/fused" --sections ceilings fused prefill --budget-s "${2:-80}"; fi ;;
    decode) if [ "$smoke" = 1 ]; then $py benches/gpu.py --device cpu --preset tiny --out "$dir/decode" --sections decode \
                                         --batches 1 2 --prompt 12 --new-tokens 3 --compile-backend eager --reps 1
            else $py benches/gpu.py --out "$dir/decode" --sections decode --budget-s "${2:-150}"; fi ;;
    focus)  if [ "$smoke" = 1 ]; then $py benches/focus_step.py --device cpu --preset tiny --steps 1 --warmup 0 --out "$dir/focus"
            else $py benches/focus_step.py --device cuda --out "$dir/focus"; fi ;;
    vllm)   if ! $py -c "import vllm" 2>/dev/null; then echo "skipped: vllm is not importable here"; return 3; fi
            if [ "$smoke" = 1 ]; then $py benches/vllm_steer.py --shape tiny --requests 4 --output-tokens 8 --repeats 1 --out "$dir/vllm"
            else $py benches/vllm_steer.py --shape llama3-8b --out "$dir/vllm"; fi ;;
    *) echo "unknown step $1 (all [--smoke] | test | fused | decode | gated | focus | vllm)" >&2; return 2 ;;
  esac
}

if [ "$step" != all ]; then
  build
  run_step "$step" 2>&1 | tee "$dir/$step.log"
  exit "${PIPESTATUS[0]}"
fi

# all: (section, seconds) in order of what the issue needs most; the total stays under 9 minutes, and no
# section may run past what is left of it
SECTIONS="build:150 info:20 gated:90 fused:90 decode:160 focus:70 test:60 vllm:60"
TOTAL=540
[ "$smoke" = 1 ] && TOTAL=1500  # the interpreter is slow; the smoke run checks the script, not the time
start=$(date +%s)
: > "$dir/sections.tsv"
for entry in $SECTIONS; do
  name=${entry%%:*}
  budget=${entry##*:}
  [ "$smoke" = 1 ] && budget=$((budget * 3))
  left=$((TOTAL - ($(date +%s) - start)))
  if [ "$left" -lt 15 ]; then
    printf '%s\tskipped\t0\tthe session deadline had passed\n' "$name" >> "$dir/sections.tsv"
    continue
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  t0=$(date +%s)
  set +e
  # python's own deadline (--budget-s) sits inside the shell's, so it can still write what it measured
  timeout -k 10 "$budget" bash -c "$(declare -f run_step build); py='$py'; smoke=$smoke; dir='$dir'; GPU_TESTS='$GPU_TESTS'; run_step $name $((budget - 20))" \
    > "$dir/$name.log" 2>&1
  rc=$?
  set -e
  case $rc in
    0) status=ok ;; 3) status=skipped ;; 124|137) status=timeout ;; *) status="failed (exit $rc)" ;;
  esac
  note=$(tail -n 1 "$dir/$name.log" | tr '\t' ' ' | cut -c1-200)
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" "$note" >> "$dir/sections.tsv"
  echo "== $name: $status in $(($(date +%s) - t0)) s" >&2
  if [ "$name" = build ] && [ $rc -ne 0 ]; then echo "build failed: see $dir/build.log" >&2; break; fi
done
$py benches/session_summary.py "$dir"
