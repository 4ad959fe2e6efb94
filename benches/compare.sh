#!/usr/bin/env bash
# Runs the digits training-step and inference benches of scarce (criterion, release) and
# of PyTorch (benches/pytorch_digits.py) in one go and prints them side by side.
# usage: benches/compare.sh            (PyTorch row only if `python3 -c 'import torch'` works)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo bench --bench train_step -- --noplot 2>/dev/null | tee /dev/stderr)
ours() { # criterion prints "digits/NAME  time: [low mid high]"
  echo "$out" | grep -A1 "digits/$1" | grep -o 'time: *\[[^]]*\]' | awk '{print $4, $5}'
}
to_ms() { awk -v v="$1" -v u="$2" 'BEGIN{ if(u=="µs"||u=="us") v/=1000; else if(u=="s") v*=1000; printf "%.2f", v }'; }
s_step=$(to_ms $(ours train_step/batch128)); s_inf=$(to_ms $(ours inference/batch128))
t_step="n/a"; t_inf="n/a"
if python3 -c 'import torch' 2>/dev/null; then
  py=$(python3 benches/pytorch_digits.py --threads 2 | tee /dev/stderr)
  t_step=$(echo "$py" | awk '/train_step/{print $4}'); t_inf=$(echo "$py" | awk '/inference/{print $4}')
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if(b=="n/a") print "n/a"; else printf "%.2f", a/b }'; }
echo
echo "| digits net, batch 128 | scarce (burn flex) ms | PyTorch CPU ms | ratio |"
echo "|---|---|---|---|"
echo "| training step | $s_step | $t_step | $(ratio "$s_step" "$t_step") |"
echo "| inference | $s_inf | $t_inf | $(ratio "$s_inf" "$t_inf") |"
echo "($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
