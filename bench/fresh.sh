#!/usr/bin/env bash
# Fresh export throughput (mis export --fresh) against mke2fs -d from a
# local copy of the same tree, in one run. The image defaults to the
# fixtures' "debian" kind (built on first use, ~6 min, needs the mirror);
# any GPT/MBR/bare image with ext partitions works:
#   bench/fresh.sh [IMAGE]
# The baseline rebuilds every ext partition with plain mke2fs -d (same type,
# block and inode size) from a cp -a copy on local disk; mis rebuilds the
# whole disk (table, FAT, copies, debugfs fix-up pass) reading its FUSE tree.
# Figures are MB/s of file content (du --apparent-size of the trees).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
go build -o bin/mis ./cmd/mis
img=${1:-$(MIS_FIXTURES_DEBIAN=1 go run ./fixtures/cmd/misfixture build debian)}
work=$(mktemp -d /var/tmp/mis-bench-fresh.XXXXXX)
cleanup() { umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export MIS_REPO=$work/repo
bin/mis init >/dev/null
bin/mis import "$img" bench:v1 >/dev/null
# partition offset, size and type of every ext filesystem mis walked
bin/mis info --json bench:v1 >"$work/info.json"
parts=$(python3 - "$work/info.json" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
parts = {p["index"]: p for p in info["layout"]["partitions"]}
for fs in info["filesystems"]:
    if fs["type"].startswith("ext"):
        p = parts[fs["partition"]]
        print(p["start"], p["size"], fs["type"], fs["block_size"])
PY
)
mkdir -p "$work/mnt"
baseline=0 content=0 i=0
while read -r start size type bs; do
  i=$((i + 1))
  mount -o loop,ro,offset="$start",sizelimit="$size" "$img" "$work/mnt"
  isize=$(dumpe2fs -h "$img?offset=$start" 2>/dev/null | awk -F: '/^Inode size/ { gsub(/ /, "", $2); print $2 }' || true)
  isize=${isize:-256}
  cp -a "$work/mnt/." "$work/tree$i"
  umount "$work/mnt"
  content=$((content + $(du -s --apparent-size -B1 "$work/tree$i" | cut -f1)))
  truncate -s "$size" "$work/base$i.img"
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(date +%s.%N)
  mke2fs -q -F -t "$type" -b "$bs" -I "$isize" -E lazy_itable_init=1,nodiscard -d "$work/tree$i" "$work/base$i.img"
  t1=$(date +%s.%N)
  baseline=$(awk -v a="$baseline" -v s="$t0" -v e="$t1" 'BEGIN { print a + e - s }')
  rm -rf "$work/tree$i" "$work/base$i.img"
done <<<"$parts"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(date +%s.%N)
bin/mis export --fresh bench:v1 "$work/fresh.raw" >/dev/null
t1=$(date +%s.%N)
fresh=$(awk -v s="$t0" -v e="$t1" 'BEGIN { print e - s }')
echo "image: $img ($i ext filesystem(s), $content bytes of file content)"
awk -v c="$content" -v b="$baseline" -v f="$fresh" 'BEGIN {
  printf "%-34s %8.2f s %8.1f MB/s\n", "mke2fs -d from a local copy", b, c / b / 1e6
  printf "%-34s %8.2f s %8.1f MB/s\n", "mis export --fresh (whole disk)", f, c / f / 1e6
  printf "fresh export time / mke2fs -d time = %.2f (goal <= 1.5)\n", f / b }'
