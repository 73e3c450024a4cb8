#!/usr/bin/env bash
# One step of the GPU session plan (benches/NOTES.md), for one call of the device tool (10 minutes at
# most each). Builds the CUDA extension first when this machine has not built it yet. Results go
# under $OUT/<device>/ (the device tool fetches $OUT); commit them under benches/results/<device>/.
#   bash benches/gpu_session.sh test      # build, then the whole test suite on the GPU
#   bash benches/gpu_session.sh fused     # ceilings, fused-op micro-benchmarks, prefill
#   bash benches/gpu_session.sh decode    # Llama-3-8B-shaped decoding, eager and compiled
#   bash benches/gpu_session.sh gated     # the gated_steer grid alone
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?"which step: test | fused | decode | gated"}
out=${OUT:-/tmp/steerkit-gpu-out}
device=$(python3 -c "import torch; n = torch.cuda.get_device_name(0).lower(); print(next((k for k in ('h200', 'h100', 'a100', 'l40s') if k in n), n.split()[-1]))")
mkdir -p "$out/$device"
export STEERKIT_COMMIT=${STEERKIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
if ! python3 -c "import steerkit._C_cuda" 2>/dev/null; then
  arch=$(python3 -c "import torch; m, n = torch.cuda.get_device_capability(0); print(f'{m}{n}')")
  STEERKIT_CUDA=1 STEERKIT_CUDA_ARCHS=$arch python3 -m pip install -q --no-build-isolation --no-deps -e .
fi
python3 -c "import steerkit; steerkit.info()"
case "$step" in
  test)   python3 -m pytest -q -rs tests 2>&1 | tee "$out/$device/gpu_tests.log" | tail -40 ;;
  fused)  python3 benches/gpu.py --out "$out/$device/fused" --sections ceilings fused prefill ;;
  decode) python3 benches/gpu.py --out "$out/$device/decode" --sections decode --budget-s 480 ;;
  gated)  python3 benches/gpu_gated_steer.py --out "$out/$device" ;;
  *) echo "unknown step $step (test | fused | decode | gated)" >&2; exit 2 ;;
esac
