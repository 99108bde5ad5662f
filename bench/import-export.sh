#!/usr/bin/env bash
# Import and export throughput on a realistic Debian image (the fixtures'
# "debian" kind: debootstrap minbase + kernel, GPT, ~1.6 GiB; built on first
# use, ~6 min, needs the Debian mirror), against cp --sparse=always and
# zstd -1 -T0 of the same image, in one run. Also peak memory (max RSS).
#   bench/import-export.sh [IMAGE]
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
go build -o bin/mis ./cmd/mis
img=${1:-$(MIS_FIXTURES_DEBIAN=1 go run ./fixtures/cmd/misfixture build debian)}
work=$(mktemp -d /var/tmp/mis-bench-ie.XXXXXX)
trap 'rm -rf "$work"' EXIT
export MIS_REPO=$work/repo
bin/mis init >/dev/null
apparent=$(stat -c %s "$img")
used=$(( $(stat -c %b "$img") * 512 ))
# Each measurement: seconds and max RSS (KiB) through GNU time.
run() { /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }; cat "$work/t"; }
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
cat "$img" >/dev/null # warm: every tool reads from the page cache alike
read -r cp_s _ < <(run cp --sparse=always "$img" "$work/copy.raw"); rm -f "$work/copy.raw"
read -r z_s _ < <(run zstd -1 -T0 -q -f "$img" -o "$work/img.zst"); zsize=$(stat -c %s "$work/img.zst"); rm -f "$work/img.zst"
read -r imp_s imp_kb < <(run bin/mis import "$img" bench:v1)
read -r re_s re_kb < <(run bin/mis import "$img" bench:v2)   # parent bench:v1: unchanged inodes reused unread
read -r exp_s exp_kb < <(run bin/mis export bench:v1 "$work/out.raw")
cmp "$img" "$work/out.raw" || { echo "EXPORT DIFFERS"; exit 1; }
stored=$(bin/mis stats --json | awk -F': ' '/"stored_bytes"/ { gsub(/,/, "", $2); print $2 }')
mb() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
echo "image: $img"
echo "apparent $apparent bytes, allocated $used bytes; mis stored $stored bytes; zstd -1 -T0 $zsize bytes"
printf '%-26s %8s s %8s MB/s (of allocated bytes)\n' \
  "cp --sparse=always" "$cp_s" "$(mb "$used" "$cp_s")" \
  "zstd -1 -T0" "$z_s" "$(mb "$used" "$z_s")" \
  "mis import" "$imp_s" "$(mb "$used" "$imp_s")" \
  "mis re-import (unchanged)" "$re_s" "$(mb "$used" "$re_s")" \
  "mis export" "$exp_s" "$(mb "$used" "$exp_s")"
echo "peak RSS: import $((imp_kb / 1024)) MiB, re-import $((re_kb / 1024)) MiB, export $((exp_kb / 1024)) MiB"
awk -v i="$imp_s" -v r="$re_s" -v z="$z_s" -v e="$exp_s" -v c="$cp_s" 'BEGIN {
  printf "import speed / zstd -1 -T0 speed = %.2f (goal >= 1)\n", z / i
  printf "export speed / cp --sparse speed = %.2f (goal >= 0.5)\n", c / e
  printf "unchanged re-import time / first import time = %.2f (goal < 0.10)\n", r / i }'
