#!/usr/bin/env bash
# Streaming soak: replays FSDD recordings in real time through `scarce run` for about twelve
# minutes and samples the process's resident memory every 10 s. Prints the first and
# last samples (memory should stay flat) and scarce's own summary (latency p50/p99,
# windows dropped: none expected at real-time pace).
#
#   benches/stream_soak.sh RUN_DIR [DATA_DIR] [RECORDINGS]
#
# RUN_DIR: a sound run folder (e.g. runs/cv-fsdd-envnet2-standard/fold-2); DATA_DIR: the
# folder holding fsdd/recordings (default ../shared/data); RECORDINGS: how many to play
# (default 400, about 710 s with the silence scarce plays after each: a window and a hop).
set -euo pipefail
run=${1:?usage: benches/stream_soak.sh RUN_DIR [DATA_DIR] [RECORDINGS]}
data=${2:-../shared/data}
count=${3:-400}
cd "$(dirname "$0")/.."
cargo build --release --quiet
play=$(mktemp -d)
trap 'rm -rf "$play"' EXIT
n=0
for f in "$data"/fsdd/recordings/*.wav; do
  [ "$n" -ge "$count" ] && break
  ln -s "$(realpath "$f")" "$play/$(printf '%05d' "$n")-$(basename "$f")"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no recordings under $data/fsdd/recordings" >&2; exit 2; }
echo "playing $n recordings in real time"
./target/release/scarce run "$run" --input "$play" --json > "$play/out.jsonl" 2> "$play/err.txt" &
pid=$!
rss=()
while kill -0 "$pid" 2>/dev/null; do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$r" ] && rss+=("$r")
  sleep 10
done
wait "$pid"
echo "resident memory (KiB), every 10 s: ${rss[*]}"
echo "first after start-up: ${rss[1]:-?} KiB, last: ${rss[-1]:-?} KiB"
tail -1 "$play/err.txt"
