#!/bin/bash
# bench/mount.sh — read throughput of `mis mount` against the original image
# and a kernel loop mount of it, measured in one run, printed as ratios.
#
#   bench/mount.sh [IMAGE]      (root; default: the debian fixture, built on first use)
#   MIS=/path/to/mis bench/mount.sh
#
# Figures: sequential MB/s of DIR/disk.raw vs the image file, and of the
# largest file vs the same file on the loop mount, cold (after
# drop_caches) and warm (second read); `tar cf /dev/null` files/s over the
# tree, cold; peak memory (VmHWM) of the serving process.
set -euo pipefail

MIS=${MIS:-mis}
IMG=${1:-}
if [ -z "$IMG" ]; then
	IMG=$(MIS_FIXTURES_DEBIAN=1 go run ./fixtures/cmd/misfixture build debian)
fi
[ "$(id -u)" = 0 ] || { echo "needs root (drop_caches, loop mount)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/mis-bench.XXXXXX)
MNT=$WORK/mnt LOOP=$WORK/loop
mkdir -p "$MNT" "$LOOP"
export MIS_REPO=$WORK/repo
cleanup() {
	umount "$LOOP" 2>/dev/null || true
	"$MIS" umount -q "$MNT" 2>/dev/null || "$MIS" umount -q -l "$MNT" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

"$MIS" init -q
"$MIS" import -q "$IMG" bench:v1
"$MIS" mount -q -d --log "$WORK/mount.log" bench:v1 "$MNT"
PID=$(grep -o 'pid [0-9]*' "$WORK/mount.log" | tail -1 | cut -d' ' -f2)

# The ext filesystem with the most files (the kernel here has no vfat) and
# where it starts in the image.
N=$("$MIS" --json info bench:v1 | python3 -c "import json,sys; fs=[f for f in json.load(sys.stdin)['filesystems'] if f['type'].startswith('ext')]; print(max(fs, key=lambda f: f['files'])['partition'])")
PART=$MNT/p$N
OFF=0
if [ "$N" != 0 ]; then
	OFF=$(sfdisk -J "$IMG" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']; print(p['partitions'][$N-1]['start']*p.get('sectorsize',512))")
fi
mount -o loop,ro,noatime,offset="$OFF" "$IMG" "$LOOP"
BIG=$(cd "$LOOP" && find . -xdev -type f -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2-)

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# mbps FILE: MB/s of one sequential read with 1 MiB blocks.
mbps() {
	local t0 t1 size
	size=$(stat -c %s "$1")
	t0=$(date +%s.%N)
	dd if="$1" of=/dev/null bs=1M status=none
	t1=$(date +%s.%N)
	python3 -c "print(f'{$size/1e6/($t1-$t0):.0f}')"
}
filesps() {
	local t0 t1 n
	n=$(find "$1" -xdev | wc -l)
	t0=$(date +%s.%N)
	tar -C "$1" -cf /dev/null . 2>/dev/null || true
	t1=$(date +%s.%N)
	python3 -c "print(f'{$n/($t1-$t0):.0f}')"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

drop; D_COLD=$(mbps "$MNT/disk.raw");   D_WARM=$(mbps "$MNT/disk.raw")
drop; I_COLD=$(mbps "$IMG");            I_WARM=$(mbps "$IMG")
drop; F_COLD=$(mbps "$PART/$BIG");      F_WARM=$(mbps "$PART/$BIG")
drop; L_COLD=$(mbps "$LOOP/$BIG");      L_WARM=$(mbps "$LOOP/$BIG")
drop; T_MIS=$(filesps "$PART");         drop; T_LOOP=$(filesps "$LOOP")
HWM=$(grep VmHWM /proc/"$PID"/status | awk '{print $2" "$3}')

echo "image: $IMG ($(stat -c %s "$IMG") bytes); large file: $BIG ($(stat -c %s "$LOOP/$BIG") bytes)"
printf '%-34s %10s %10s %8s\n' "" "mis MB/s" "ref MB/s" "ratio"
printf '%-34s %10s %10s %8s\n' "disk.raw vs image file, cold" "$D_COLD" "$I_COLD" "$(ratio "$D_COLD" "$I_COLD")"
printf '%-34s %10s %10s %8s\n' "disk.raw vs image file, warm" "$D_WARM" "$I_WARM" "$(ratio "$D_WARM" "$I_WARM")"
printf '%-34s %10s %10s %8s\n' "large file vs loop mount, cold" "$F_COLD" "$L_COLD" "$(ratio "$F_COLD" "$L_COLD")"
printf '%-34s %10s %10s %8s\n' "large file vs loop mount, warm" "$F_WARM" "$L_WARM" "$(ratio "$F_WARM" "$L_WARM")"
printf '%-34s %10s %10s %8s\n' "tar cf /dev/null files/s, cold" "$T_MIS" "$T_LOOP" "$(ratio "$T_MIS" "$T_LOOP")"
echo "serving process VmHWM: $HWM"
