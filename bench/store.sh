#!/usr/bin/env bash
# Store throughput against the tools a user would compare with, on the same
# 256 MiB of realistic data (files from /usr/bin and /usr/lib), in one run:
#   mis StoreNew (chunk + hash + compress + pack + index), StoreDuplicate
#   (hash + index lookup), zstd -1 (one thread and -T0), b3sum.
# Prints MB/s and the ratios the store issue sets as goals.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/mis-bench-store.XXXXXX)
trap 'rm -rf "$work"' EXIT
corpus=$work/corpus
MIS_BENCH_CORPUS_OUT=$corpus go test -run '^$' -bench 'StoreNew/fastest|StoreDuplicate' -benchtime 3x -count 1 ./repo | tee "$work/go.txt"
bytes=$(stat -c %s "$corpus")
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
timeit() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
cat "$corpus" >/dev/null # page cache warm for every tool alike
z1=$(timeit zstd -1 -T1 -q -c "$corpus")
z0=$(timeit zstd -1 -T0 -q -c "$corpus")
b3=$(timeit b3sum --num-threads 1 "$corpus")
new=$(awk '/StoreNew/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' "$work/go.txt" | head -1)
dup=$(awk '/StoreDuplicate/ { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' "$work/go.txt" | head -1)
echo
echo "corpus: $bytes bytes"
printf '%-28s %10s MB/s\n' "mis store new data" "$new" "mis store duplicate data" "$dup" \
  "zstd -1 -T1" "$(mbs "$z1")" "zstd -1 -T0" "$(mbs "$z0")" "b3sum (1 thread)" "$(mbs "$b3")"
awk -v n="$new" -v d="$dup" -v z="$(mbs "$z1")" -v b="$(mbs "$b3")" 'BEGIN {
  slow = (z < b) ? z : b
  printf "store new / slower of (zstd -1 -T1, b3sum) = %.2f (goal >= 0.5)\n", n / slow
  printf "store duplicate / store new = %.2f (goal >= 3)\n", d / n }'
