#!/usr/bin/env bash
# bench/compare.sh — mis against the tools one would use instead to keep a
# history of VM disk images: restic, borg, desync, casync, a qcow2 backing
# chain and plain zstd (plus raw sparse copies as the baseline), measured in
# one run on the same images.
#
#   bench/compare.sh [--quick] [--runs N] [--out DIR] [--keep] [--no-install]
#
# Full mode (the default) takes about an hour on a 2-core machine, plus the
# first build of the Debian fixtures (debootstrap from the Debian mirror,
# ~10 min each): the history of one Debian machine (fixtures debian,
# debian-v2, debian-v3, debian-v4) and another image (debian-other), 3
# timing runs. --quick uses the small fixtures (ext4 plus two versions of it
# edited through a loop mount, and the gpt disk) and 1 run: a few minutes;
# CI runs it so the harness cannot rot.
#
# Needs root (drop_caches, loop and FUSE mounts) and Debian packages; it
# installs restic, borgbackup, python3-llfuse, casync, qemu-utils, zstd,
# hyperfine and fuse3 with apt-get and builds desync from the Go module
# proxy when they are missing (--no-install: fail instead).
#
# Per tool and version: time to add it (mis import with its parent, restic
# backup, borg create, desync/casync make, a qcow2 overlay rebased onto the
# previous version, zstd -3, cp --sparse), bytes the store grew by, time to restore it
# (each restore is compared with cmp against its input: any difference or any
# tool failure stops the run), the store's final size; for mounts (mis
# mount, restic mount, borg mount, desync mount-index) the cold sequential
# read of the image and a cold tree walk (tar cf /dev/null); for mis, the
# re-import of an unchanged image and the ideal file-level bound (unique
# file contents each zstd -3, plus mis's manifests and residual data).
#
# Output: DIR/compare.md, DIR/compare.svg, DIR/machine.txt, the raw
# measurements DIR/compare.jsonl and mis stats --json of the history
# DIR/mis-stats.json (DIR: bench/results, or bench/results/quick with --quick).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
QUICK=0 RUNS="" KEEP=0 INSTALL=1 OUT=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--runs) RUNS=$2; shift ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	--no-install) INSTALL=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$RUNS" ] || RUNS=$((QUICK ? 1 : 3))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Quick results go beside, not over, the committed full ones.
OUT=${OUT:-$ROOT/bench/results$([ $QUICK = 1 ] && echo /quick || true)}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin:$HOME/go/bin"
[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root (drop_caches, loop and FUSE mounts)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/mis-compare.XXXXXX)
RESULTS=$WORK/compare.jsonl
MOUNTS=()   # mount points to undo on exit, innermost last
BGPIDS=()   # FUSE servers started in the foreground mode, by pid
log() { echo "[$(date +%T)] $*" >&2; }
die() { echo "compare.sh: FAILED: $*" >&2; exit 1; }

cleanup() {
	local rc=$? i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mountpoint -q "${MOUNTS[i]}" 2>/dev/null && { umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true; }
	done
	for pid in "${BGPIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	if [ "$KEEP" = 1 ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	[ $rc = 0 ] || echo "compare.sh: FAILED (exit $rc); see the messages above" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rec KEY=VALUE...: one JSON line of measurements (values have no quotes).
rec() {
	local out="" kv k v
	for kv in "$@"; do
		k=${kv%%=*} v=${kv#*=}
		if [[ $v =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then out+=",\"$k\":$v"; else out+=",\"$k\":\"$v\""; fi
	done
	echo "{${out#,}}" >>"$RESULTS"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
apparent() { du -sb "$@" | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
allocated() { du -sB1 "$@" | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# timed CMD...: run it (and a sync) with cold caches; print seconds. Output
# goes to $WORK/last.log; a failure or a step over $STEP_LIMIT seconds
# prints it and stops everything. CMD may be a function of this script
# (all are exported): timeout runs it in a child bash, no stdin, so a
# prompt fails instead of hanging, and kills the step's whole process group.
STEP_LIMIT=${STEP_LIMIT:-$((QUICK ? 600 : 3600))}
timed() {
	local t0 t1
	drop_caches
	t0=$(now)
	timeout -k 30 "$STEP_LIMIT" bash -c '"$@"' timed-step "$@" </dev/null >"$WORK/last.log" 2>&1 ||
		{
			local rc=$?
			cat "$WORK/last.log" >&2
			die "$* (exit $rc$([ $rc = 124 ] && echo ": over the $STEP_LIMIT s step limit"))"
		}
	sync
	t1=$(now)
	elapsed "$t0" "$t1"
}

# ---------------------------------------------------------------- install
install_peers() {
	local missing=()
	command -v restic >/dev/null || missing+=(restic)
	command -v borg >/dev/null || missing+=(borgbackup)
	# borg mount needs llfuse, which the borgbackup package only suggests
	# (asked of dpkg: python3 on PATH may not be Debian's).
	dpkg -s python3-llfuse >/dev/null 2>&1 || missing+=(python3-llfuse)
	command -v casync >/dev/null || missing+=(casync)
	command -v qemu-img >/dev/null || missing+=(qemu-utils)
	command -v zstd >/dev/null || missing+=(zstd)
	command -v hyperfine >/dev/null || missing+=(hyperfine)
	command -v fusermount3 >/dev/null || missing+=(fuse3)
	if [ ${#missing[@]} -gt 0 ]; then
		[ "$INSTALL" = 1 ] || die "missing: ${missing[*]} (run without --no-install)"
		log "installing ${missing[*]}"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	if ! command -v desync >/dev/null; then
		[ "$INSTALL" = 1 ] || die "missing: desync (run without --no-install)"
		build_desync
	fi
}

# desync is not packaged by Debian; build a pinned release from the Go module
# proxy in a scratch module (go install pkg@version needs the proxy's version
# list, which some proxies refuse).
DESYNC_VERSION=v0.9.6
build_desync() {
	local d=$WORK/desync-build
	log "building desync $DESYNC_VERSION"
	mkdir -p "$d"
	printf 'module desyncbuild\n\ngo 1.22\n\nrequire github.com/folbricht/desync %s\n' "$DESYNC_VERSION" >"$d/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/folbricht/desync/cmd/desync"\n' >"$d/tools.go"
	if ! (cd "$d" && GOFLAGS=-mod=mod go build -o /usr/local/bin/desync github.com/folbricht/desync/cmd/desync) >"$d/log" 2>&1; then
		# The checksum database may not know every module the proxy serves.
		log "desync: checksum database lookup failed, building without it (GOSUMDB=off)"
		(cd "$d" && GOSUMDB=off GOFLAGS=-mod=mod go build -o /usr/local/bin/desync github.com/folbricht/desync/cmd/desync) >"$d/log" 2>&1 ||
			{ cat "$d/log" >&2; die "desync build"; }
	fi
}

describe_machine() {
	{
		echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "mode: $([ $QUICK = 1 ] && echo quick || echo full), $RUNS run(s)"
		echo "cpu: $(nproc) x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
		echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
		echo "kernel: $(uname -r)"
		echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
		local dev disk
		dev=$(df --output=source "$WORK" | tail -1)
		disk=$(lsblk -no PKNAME "$dev" 2>/dev/null | head -1 || true)
		[ -n "$disk" ] || disk=${dev#/dev/}
		echo "disk: $WORK on $dev ($(df --output=fstype "$WORK" | tail -1)); /dev/$disk: $(lsblk -dno SIZE,ROTA,MODEL "/dev/$disk" 2>/dev/null |
			awk '{ $2 = ($2 == 1 ? "rotational" : "non-rotational"); print }' || true)"
		echo "mis: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown), $(go version | cut -d' ' -f3)"
		echo "restic: $(restic version | head -1)"
		echo "borg: $(borg --version)"
		echo "desync: $DESYNC_VERSION (module github.com/folbricht/desync)"
		echo "casync: $(casync --version 2>&1 | head -1)"
		echo "qemu-img: $(qemu-img --version | head -1)"
		echo "zstd: $(zstd --version)"
		echo "hyperfine: $(hyperfine --version)"
		echo "cp: $(cp --version | head -1)"
	} >"$WORK/machine.txt"
}

# ---------------------------------------------------------------- corpus
# CORPUS: lines "NAME:TAG PATH"; versions of one NAME in history order.
CORPUS=()
fixture() { (cd "$ROOT" && go run ./fixtures/cmd/misfixture build "$@") || die "fixtures $*"; }

# pyrand SEED BYTES: deterministic incompressible bytes.
pyrand() { python3 -c "import random, sys; random.seed($1); sys.stdout.buffer.write(random.randbytes($2))"; }

# edit_copy SRC DST STEP: DST = SRC changed through a loop mount, like a
# machine's next version: files added, rewritten, removed, re-owned.
edit_copy() {
	local src=$1 dst=$2 step=$3 mnt=$WORK/edit-mnt
	cp --sparse=always "$src" "$dst"
	mkdir -p "$mnt"
	timeout 60 mount -o loop,noatime "$dst" "$mnt" || die "loop mount $dst"
	MOUNTS+=("$mnt")
	mkdir -p "$mnt/srv/data-$step"
	pyrand "$step" $((3 << 20)) >"$mnt/srv/data-$step/blob.bin"
	pyrand "$((step + 100))" $((64 << 10)) | base64 >"$mnt/srv/data-$step/notes.txt"
	local n=0 f
	while IFS= read -r -d '' f; do
		n=$((n + 1))
		# Some fixture files refuse changes (immutable, append-only): skip them.
		case $((n % 4)) in
		0) printf 'edited in version %s\n' "$step" 2>/dev/null | dd of="$f" conv=notrunc status=none 2>/dev/null || true ;;
		1) rm -f "$f" 2>/dev/null || true ;;
		2) chown 1234:1234 "$f" 2>/dev/null || true ;;
		3) chmod 0600 "$f" 2>/dev/null || true ;;
		esac
		[ $n -lt 24 ] || break
	done < <(find "$mnt" -xdev -type f -size +1k -not -path '*/srv/*' -print0 | sort -z | tail -z -n +$((step * 30)))
	[ "$step" -lt 3 ] || rm -rf "$mnt/srv/data-$((step - 1))"
	umount "$mnt"
	unset 'MOUNTS[-1]'
}

build_corpus() {
	if [ $QUICK = 1 ]; then
		local ext4 gpt
		{ read -r ext4; read -r gpt; } < <(fixture ext4 gpt)
		# Copies: CI runs this beside the tests, which loop-mount the cached
		# fixtures with a sizelimit; a second loop device on the same file
		# with another sizelimit is refused ("overlapping loop device").
		cp --sparse=always "$ext4" "$WORK/hist-v1.img" && ext4=$WORK/hist-v1.img
		cp --sparse=always "$gpt" "$WORK/other-v1.img" && gpt=$WORK/other-v1.img
		edit_copy "$ext4" "$WORK/hist-v2.img" 2
		edit_copy "$WORK/hist-v2.img" "$WORK/hist-v3.img" 3
		CORPUS=("hist:v1 $ext4" "hist:v2 $WORK/hist-v2.img" "hist:v3 $WORK/hist-v3.img" "other:v1 $gpt")
	else
		local p=()
		mapfile -t p < <(MIS_FIXTURES_DEBIAN=1 fixture debian debian-v2 debian-v3 debian-v4 debian-other)
		[ ${#p[@]} = 5 ] || die "expected 5 Debian fixture paths, got ${#p[@]}"
		CORPUS=("debian:v1 ${p[0]}" "debian:v2 ${p[1]}" "debian:v3 ${p[2]}" "debian:v4 ${p[3]}" "other:v1 ${p[4]}")
	fi
	mkdir -p "$WORK/stage"
	local e ref img
	for e in "${CORPUS[@]}"; do
		ref=${e%% *} img=${e#* }
		rec kind=image image="$ref" path="$img" apparent="$(stat -c %s "$img")" allocated="$(allocated "$img")"
	done
}

# stage_link REF IMG: the image at a stable per-NAME path, so restic and
# borg see each version as a new state of the same file (as a backup of a
# VM's disk would). A hard link: no copy, a new inode per version.
stage_path() { echo "$WORK/stage/${1%%:*}.raw"; }
stage_link() { ln -f "$2" "$(stage_path "$1")" 2>/dev/null || cp --sparse=always "$2" "$(stage_path "$1")"; }

# ---------------------------------------------------------------- tools
# Each tool: init_T DIR, add_T REF IMG, restore_T REF OUT, store_T (paths
# whose size is the store). Stores live under $STORE/T.
TOOLS=(mis restic borg desync casync qcow2 zstd raw)
MIS=$WORK/bin/mis
export WORK MIS STORE=$WORK/stores
export RESTIC_PASSWORD=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_BASE_DIR=$WORK/borg-base RESTIC_CACHE_DIR=$WORK/restic-cache

init_mis() { MIS_REPO=$1 "$MIS" init -q; }
add_mis() { MIS_REPO=$STORE/mis "$MIS" import -q "$2" "$1"; }
restore_mis() { MIS_REPO=$STORE/mis "$MIS" export -q "$1" "$2"; }
store_mis() { echo "$STORE/mis"; }

init_restic() { restic -q init --repository-version 2 -r "$1"; }
add_restic() {
	stage_link "$1" "$2"
	restic -r "$STORE/restic" backup --json --host bench --tag "$1" "$(stage_path "$1")" >"$WORK/restic.json"
	local id
	id=$(grep -o '"snapshot_id":"[0-9a-f]*"' "$WORK/restic.json" | cut -d'"' -f4)
	[ -n "$id" ] || { cat "$WORK/restic.json"; return 1; }
	echo "$1 $id" >>"$STORE/restic.ids"
}
restic_id() { awk -v r="$1" '$1 == r { print $2 }' "$STORE/restic.ids"; }
restore_restic() {
	local d=$WORK/restic-out
	rm -rf "$d"
	restic -q -r "$STORE/restic" restore "$(restic_id "$1")" --target "$d" &&
		mv "$d$(stage_path "$1")" "$2" && rm -rf "$d"
}
store_restic() { echo "$STORE/restic"; }

init_borg() { borg init -e none "$1"; }
add_borg() { stage_link "$1" "$2" && (cd "$WORK/stage" && borg create --compression zstd,3 "$STORE/borg::${1/:/-}" "${1%%:*}.raw"); }
restore_borg() {
	local d=$WORK/borg-out
	rm -rf "$d" && mkdir -p "$d"
	(cd "$d" && borg extract --sparse "$STORE/borg::${1/:/-}") && mv "$d/${1%%:*}.raw" "$2" && rm -rf "$d"
}
store_borg() { echo "$STORE/borg"; }

init_desync() { mkdir -p "$1/store" "$1/index"; }
add_desync() { desync make -s "$STORE/desync/store" "$STORE/desync/index/${1/:/-}.caibx" "$2"; }
restore_desync() { desync extract -s "$STORE/desync/store" "$STORE/desync/index/${1/:/-}.caibx" "$2"; }
store_desync() { echo "$STORE/desync"; }

init_casync() { mkdir -p "$1/store" "$1/index"; }
add_casync() { casync make --compression=zstd --store="$STORE/casync/store" "$STORE/casync/index/${1/:/-}.caibx" "$2"; }
restore_casync() { casync extract --store="$STORE/casync/store" "$STORE/casync/index/${1/:/-}.caibx" "$2"; }
store_casync() { echo "$STORE/casync"; }

# qcow2: the first version of a NAME whole, each later one as a qcow2 whose
# backing file is the previous version, holding only the clusters that
# differ: an overlay of the raw image, rebased (safe mode, which compares
# the two backings cluster by cluster) onto the previous version. (convert
# -B would copy every allocated cluster: it does not compare with the base.)
init_qcow2() { mkdir -p "$1"; }
add_qcow2() {
	local q=$STORE/qcow2/${1/:/-}.qcow2 prev
	prev=$(cat "$STORE/qcow2/${1%%:*}.last" 2>/dev/null || true)
	if [ -n "$prev" ]; then
		qemu-img create -q -f qcow2 -b "$(realpath "$2")" -F raw "$q" && qemu-img rebase -b "$prev" -F qcow2 "$q"
	else
		qemu-img convert -O qcow2 "$2" "$q"
	fi
	echo "$q" >"$STORE/qcow2/${1%%:*}.last"
}
restore_qcow2() { qemu-img convert -O raw "$STORE/qcow2/${1/:/-}.qcow2" "$2"; }
store_qcow2() { echo "$STORE/qcow2"; }

init_zstd() { mkdir -p "$1"; }
add_zstd() { zstd -3 -T0 -q "$2" -o "$STORE/zstd/${1/:/-}.zst"; }
restore_zstd() { zstd -d -q "$STORE/zstd/${1/:/-}.zst" -o "$2"; }
store_zstd() { echo "$STORE/zstd"; }

init_raw() { mkdir -p "$1"; }
add_raw() { cp --sparse=always "$2" "$STORE/raw/${1/:/-}.raw"; }
restore_raw() { cp --sparse=always "$STORE/raw/${1/:/-}.raw" "$2"; }
store_raw() { echo "$STORE/raw"; }

# rotate N: the tool list shifted by N, so no tool always goes first.
rotate() { local n=$(($1 % ${#TOOLS[@]})); echo "${TOOLS[@]:n}" "${TOOLS[@]:0:n}"; }

one_run() {
	local run=$1 t e ref img before s out order
	STORE=$WORK/stores
	rm -rf "$STORE" "$WORK/stage"/*
	mkdir -p "$STORE"
	for t in "${TOOLS[@]}"; do "init_$t" "$STORE/$t" >/dev/null || die "init $t"; done
	read -ra order <<<"$(rotate "$run")"
	for e in "${CORPUS[@]}"; do
		ref=${e%% *} img=${e#* }
		for t in "${order[@]}"; do
			before=$(apparent "$("store_$t")")
			s=$(timed "add_$t" "$ref" "$img")
			rec kind=add tool="$t" image="$ref" run="$run" seconds="$s" added=$(($(apparent "$("store_$t")") - before))
			log "run $run: $t add $ref ${s}s"
		done
	done
	out=$WORK/restored.raw
	for e in "${CORPUS[@]}"; do
		ref=${e%% *} img=${e#* }
		for t in "${order[@]}"; do
			rm -f "$out"
			s=$(timed "restore_$t" "$ref" "$out")
			cmp "$img" "$out" || die "$t restored $ref differently from $img"
			rec kind=restore tool="$t" image="$ref" run="$run" seconds="$s"
			log "run $run: $t restore $ref ${s}s, identical"
		done
	done
	rm -f "$out"
	# Re-import of an unchanged image: the first version again onto itself.
	local first=${CORPUS[0]%% *} firstimg=${CORPUS[0]#* }
	s=$(timed env MIS_REPO="$STORE/mis" "$MIS" import -q --parent "$first" "$firstimg" "${first}-again")
	rec kind=reimport run="$run" seconds="$s" first="$(awk -v r="$run" -v i="$first" -F'"seconds":' \
		'index($0, "\"kind\":\"add\",\"tool\":\"mis\",\"image\":\"" i "\",\"run\":" r ",") { split($2, a, ","); print a[1] }' "$RESULTS")"
	log "run $run: mis re-import of unchanged $first ${s}s"
	MIS_REPO="$STORE/mis" "$MIS" rm -q "${first}-again" >/dev/null
	mount_rows "$run"
}

# ---------------------------------------------------------------- mounts
# wait_for PATH SECONDS: until PATH exists (a FUSE mount is up) or fail.
wait_for() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	die "timed out after $2 s waiting for $1"
}

unmount() {
	local m=$1 i
	umount "$m" 2>/dev/null || fusermount -u "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do mountpoint -q "$m" || break; sleep 0.1; done
	mountpoint -q "$m" && { umount -l "$m" || die "cannot unmount $m"; }
	for i in "${!MOUNTS[@]}"; do [ "${MOUNTS[i]}" = "$m" ] && unset 'MOUNTS[i]'; done
	MOUNTS=("${MOUNTS[@]}")
	return 0
}

# loop_mount IMG OFFSET DIR: read-only ext4 loop mount of the filesystem at
# OFFSET. A loop device without a sizelimit reaches to the end of the file,
# and the kernel detaches an unmounted one asynchronously, so mounting the
# next partition of the same image right after an umount can be refused
# ("overlapping loop device"): wait for the old device to go first.
loop_mount() {
	local img=$1 off=$2 dir=$3 i
	for ((i = 0; i < 100; i++)); do
		[ -z "$(losetup -j "$img" 2>/dev/null)" ] && break
		sleep 0.1
	done
	timeout 60 mount -t ext4 -o ro,loop,noload,offset="$off" "$img" "$dir"
}

# root_part IMG: "N OFFSET" of the largest partition holding an ext
# filesystem (N = 0, offset 0 for a bare filesystem), found by mounting it.
root_part() {
	local img=$1 m=$WORK/probe line n off
	mkdir -p "$m"
	if ! sfdisk -J "$img" >/dev/null 2>&1; then echo "0 0"; return; fi
	while read -r n off; do
		if loop_mount "$img" "$off" "$m" 2>/dev/null; then
			umount "$m"
			echo "$n $off"
			return
		fi
	done < <(sfdisk -J "$img" | python3 -c '
import json, re, sys
t = json.load(sys.stdin)["partitiontable"]
ss = t.get("sectorsize", 512)
for p in sorted(t["partitions"], key=lambda p: -p["size"]):
    print(re.search(r"(\d+)$", p["node"]).group(1), p["start"] * ss)')
	die "no ext filesystem found in $img"
}

# ext_parts IMG: "N OFFSET" of every partition holding an ext filesystem.
ext_parts() {
	local img=$1 m=$WORK/probe n off
	mkdir -p "$m"
	if ! sfdisk -J "$img" >/dev/null 2>&1; then echo "0 0"; return; fi
	while read -r n off; do
		if loop_mount "$img" "$off" "$m" 2>/dev/null; then
			umount "$m"
			echo "$n $off"
		fi
	done < <(sfdisk -J "$img" | python3 -c '
import json, re, sys
t = json.load(sys.stdin)["partitiontable"]
ss = t.get("sectorsize", 512)
for p in t["partitions"]:
    print(re.search(r"(\d+)$", p["node"]).group(1), p["start"] * ss)')
}

# seq_read FILE: MB/s of one cold sequential read.
seq_read() {
	local s size
	size=$(stat -L -c %s "$1")
	s=$(timed timeout 3600 dd if="$1" of=/dev/null bs=1M status=none)
	awk -v b="$size" -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }'
}

# walk_tree TOOL RUN DIR: cold tar cf /dev/null over DIR (files counted after,
# so the count does not warm the caches).
# tar exits 1 for warnings (a socket is skipped), 2 for errors.
tar_walk() { timeout 3600 tar -C "$1" -cf /dev/null . 2>/dev/null || [ $? = 1 ]; }
walk_tree() {
	local s n
	s=$(timed tar_walk "$3")
	n=$(find "$3" -xdev | wc -l)
	rec kind=walk tool="$1" run="$2" files="$n" seconds="$s"
	log "run $2: $1 walk $n files in ${s}s"
}

# The served image file of each FUSE tool for REF, mounted at $1. Each sets
# FILE; the server runs as a background job (restic, desync) or daemon
# (mis, borg).
mount_mis() { MIS_REPO=$STORE/mis timeout 120 "$MIS" mount -q -d --log "$WORK/mis-mount.log" "$REF" "$1" || die "mis mount"; MOUNTS+=("$1"); FILE=$1/disk.raw; wait_for "$FILE" 60; }
mount_restic() {
	restic -r "$STORE/restic" mount --no-default-permissions "$1" >"$WORK/restic-mount.log" 2>&1 &
	BGPIDS+=($!)
	MOUNTS+=("$1")
	local id
	id=$(restic_id "$REF")
	FILE=$1/ids/${id:0:8}$(stage_path "$REF")
	wait_for "$FILE" 120
}
mount_borg() { timeout 120 borg mount "$STORE/borg::${REF/:/-}" "$1" || die "borg mount"; MOUNTS+=("$1"); FILE=$1/${REF%%:*}.raw; wait_for "$FILE" 120; }
mount_desync() {
	desync mount-index -s "$STORE/desync/store" "$STORE/desync/index/${REF/:/-}.caibx" "$1" >"$WORK/desync-mount.log" 2>&1 &
	BGPIDS+=($!)
	MOUNTS+=("$1")
	FILE=$1/${REF/:/-}
	wait_for "$FILE" 120
}

mount_rows() {
	local run=$1 t m=$WORK/fuse l=$WORK/loop img n off mbps
	# The mounted version: the last of the first NAME's history.
	local name=${CORPUS[0]%%:*} e
	for e in "${CORPUS[@]}"; do [ "${e%%:*}" = "$name" ] && REF=${e%% *} img=${e#* }; done
	read -r n off < <(root_part "$img")
	mkdir -p "$m" "$l"
	mbps=$(seq_read "$img")
	rec kind=read tool=image run="$run" mbps="$mbps"
	loop_mount "$img" "$off" "$l" || die "loop mount $img"
	MOUNTS+=("$l")
	walk_tree image "$run" "$l"
	unmount "$l"
	for t in mis restic borg desync; do
		"mount_$t" "$m"
		mbps=$(seq_read "$FILE")
		rec kind=read tool="$t" run="$run" mbps="$mbps"
		log "run $run: $t mount reads $mbps MB/s"
		unmount "$m"
		"mount_$t" "$m" # a fresh server: the read above warmed its caches
		if [ "$t" = mis ]; then
			walk_tree mis "$run" "$m/p$n"
		else
			loop_mount "$FILE" "$off" "$l" || die "loop mount of $t's image"
			MOUNTS+=("$l")
			walk_tree "$t" "$run" "$l"
			unmount "$l"
		fi
		unmount "$m"
	done
	local pid
	for pid in "${BGPIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	BGPIDS=()
}

# ---------------------------------------------------------------- bound
# The ideal file-level bound: the distinct contents of the files of every
# version's ext filesystems, each compressed with zstd -3, plus what mis
# stores besides file content (manifests and residual data).
file_bound() {
	local stage=$WORK/unique l=$WORK/loop e img n off seen=0 out parts part
	mkdir -p "$l" "$stage"
	for e in "${CORPUS[@]}"; do
		img=${e#* }
		# The whole list first: ext_parts probes by mounting, and must not
		# run while this loop has a partition of the same image mounted.
		mapfile -t parts < <(ext_parts "$img")
		for part in "${parts[@]}"; do
			read -r n off <<<"$part"
			loop_mount "$img" "$off" "$l" || die "loop mount $img"
			MOUNTS+=("$l")
			out=$("$WORK/bin/report" uniquefiles -into "$stage" "$l") || die "uniquefiles $img"
			seen=$((seen + $(echo "$out" | awk '{ print $2 }')))
			unmount "$l"
		done
	done
	local uniq zsize
	uniq=$(find "$stage" -type f | wc -l)
	(cd "$stage" && find . -type f -print0 | xargs -0 -r zstd -3 -q --rm) || die "zstd of unique files"
	zsize=$(find "$stage" -type f -name '*.zst' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
	MIS_REPO=$STORE/mis "$MIS" stats --json >"$WORK/stats.json"
	python3 - "$WORK/stats.json" "$uniq" "$seen" "$zsize" >>"$RESULTS" <<-'EOF'
		import json, sys
		s = json.load(open(sys.argv[1]))
		k = s["live_by_kind"]
		print(json.dumps({"kind": "bound", "unique_files": int(sys.argv[2]), "files_seen": int(sys.argv[3]),
		    "files_zstd": int(sys.argv[4]), "manifest": k["manifest_stored_bytes"],
		    "residual": k["residual_stored_bytes"], "stored": s["stored_bytes"]}))
	EOF
	cp "$WORK/stats.json" "$WORK/mis-stats.json"
	rm -rf "$stage"
}

# ---------------------------------------------------------------- main
# Every function, for timed's child bash.
export -f $(declare -F | awk '{ print $3 }')

main() {
	local t0 run t
	t0=$(now)
	install_peers
	mkdir -p "$WORK/bin"
	log "building mis and the report tool"
	(cd "$ROOT" && go build -o "$WORK/bin/mis" ./cmd/mis && go build -o "$WORK/bin/report" ./bench/report) || die "go build"
	describe_machine
	rec kind=mode mode="$([ $QUICK = 1 ] && echo quick || echo full)" runs="$RUNS" date="$(date -u +%Y-%m-%d)"
	log "building the corpus"
	build_corpus
	for ((run = 1; run <= RUNS; run++)); do
		log "run $run of $RUNS"
		one_run "$run"
	done
	# The stores of the last run: their final size.
	for t in "${TOOLS[@]}"; do
		rec kind=stored tool="$t" apparent="$(apparent "$("store_$t")")" allocated="$(allocated "$("store_$t")")"
	done
	log "file-level bound"
	file_bound
	mkdir -p "$OUT"
	cp "$RESULTS" "$OUT/compare.jsonl"
	cp "$WORK/machine.txt" "$OUT/machine.txt"
	cp "$WORK/mis-stats.json" "$OUT/mis-stats.json"
	"$WORK/bin/report" render -in "$OUT/compare.jsonl" -machine "$OUT/machine.txt" -out "$OUT" || die "report"
	log "done in $(elapsed "$t0" "$(now)") s: $OUT/compare.md, $OUT/compare.svg, $OUT/machine.txt"
	cat "$OUT/compare.md"
}
main
