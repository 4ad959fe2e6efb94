#!/usr/bin/env bash
# Runs the digits training-step and inference benches of scarce (criterion, release) and
# of PyTorch (benches/pytorch_digits.py) in one go and prints them side by side.
# usage: benches/compare.sh            (PyTorch column only if `python3 -c 'import torch'` works)
#        CARGO_BENCH_FEATURES=tch LIBTORCH_USE_PYTORCH=1 benches/compare.sh   (adds scarce on LibTorch)
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [ -n "${CARGO_BENCH_FEATURES:-}" ]; then features=(--features "$CARGO_BENCH_FEATURES"); fi
out=$(cargo bench "${features[@]}" --bench train_step -- --noplot 2>/dev/null | tee /dev/stderr)
ours() { # criterion prints "GROUP/NAME  time: [low mid high]"; $2 = group (default digits)
  echo "$out" | grep -A1 "^${2:-digits}/$1" | grep -o 'time: *\[[^]]*\]' | awk '{print $4, $5}'
}
to_ms() { awk -v v="$1" -v u="$2" 'BEGIN{ if(u=="µs"||u=="us") v/=1000; else if(u=="s") v*=1000; printf "%.2f", v }'; }
ms_or_na() { local v; v=$(ours "$@"); if [ -n "$v" ]; then to_ms $v; else echo "n/a"; fi; }
s_step=$(ms_or_na train_step/batch128); s_mcd=$(ms_or_na mcd_iteration/batch128); s_inf=$(ms_or_na inference/batch128)
# LibTorch rows exist when the bench was built with the tch feature (CARGO_BENCH_FEATURES=tch)
c_step=$(ms_or_na train_step/batch128 digits-tch); c_mcd=$(ms_or_na mcd_iteration/batch128 digits-tch); c_inf=$(ms_or_na inference/batch128 digits-tch)
t_step="n/a"; t_mcd="n/a"; t_inf="n/a"
if python3 -c 'import torch' 2>/dev/null; then
  py=$(python3 benches/pytorch_digits.py --threads 2 | tee /dev/stderr)
  t_step=$(echo "$py" | awk '/train_step/{print $4}'); t_inf=$(echo "$py" | awk '/inference/{print $4}')
  t_mcd=$(echo "$py" | awk '/mcd_iteration/{print $4}')
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if(a=="n/a"||b=="n/a") print "n/a"; else printf "%.2f", a/b }'; }
echo
echo "| digits net, batch 128 | scarce (flex + scarce kernels) ms | scarce (tch) ms | PyTorch CPU ms | ratio flex | ratio tch |"
echo "|---|---|---|---|---|---|"
row() { echo "| $1 | $2 | $3 | $4 | $(ratio "$2" "$4") | $(ratio "$3" "$4") |"; }
row "training step" "$s_step" "$c_step" "$t_step"
row "MCD iteration (A, B, 4 x C)" "$s_mcd" "$c_mcd" "$t_mcd"
row "inference" "$s_inf" "$c_inf" "$t_inf"
echo "($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
