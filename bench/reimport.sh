#!/usr/bin/env bash
# Unchanged re-import against the first import, cold (page cache dropped
# before each step) and warm, on the Debian image (the fixtures' "debian"
# kind, built on first use), in one run:
#   first      mis import IMG b:v1 into an empty repository
#   sound      mis import IMG b:vN with b:v1 as parent (default: every file
#              read and hashed; unchanged chunks cost no compression)
#   trusted    the same with --trust-metadata (unchanged inodes unread)
#   bench/reimport.sh [IMAGE]
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/.."
go build -o bin/mis ./cmd/mis
img=${1:-$(MIS_FIXTURES_DEBIAN=1 go run ./fixtures/cmd/misfixture build debian)}
work=$(mktemp -d /var/tmp/mis-bench-reimport.XXXXXX)
trap 'rm -rf "$work"' EXIT
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { /usr/bin/time -f '%e' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }; cat "$work/t"; }
n=0
measure() { # mode: cold|warm; prints first sound trusted seconds
	local mode=$1
	export MIS_REPO=$work/repo-$mode
	bin/mis init >/dev/null
	[ "$mode" = cold ] && drop || cat "$img" >/dev/null
	local first sound trusted
	first=$(secs bin/mis import "$img" b:v1)
	[ "$mode" = cold ] && drop
	sound=$(secs bin/mis import "$img" b:v2)
	[ "$mode" = cold ] && drop
	trusted=$(secs bin/mis import --trust-metadata "$img" b:v3)
	echo "$first $sound $trusted"
}
read -r cf cs ct < <(measure cold)
read -r wf ws wt < <(measure warm)
echo "image: $img ($(stat -c %s "$img") bytes apparent, $(( $(stat -c %b "$img") * 512 )) allocated)"
awk -v cf="$cf" -v cs="$cs" -v ct="$ct" -v wf="$wf" -v ws="$ws" -v wt="$wt" 'BEGIN {
  printf "%-8s %10s %10s %10s %14s %14s\n", "cache", "first s", "sound s", "trusted s", "sound/first", "trusted/first"
  printf "%-8s %10.2f %10.2f %10.2f %14.3f %14.3f\n", "cold", cf, cs, ct, cs / cf, ct / cf
  printf "%-8s %10.2f %10.2f %10.2f %14.3f %14.3f\n", "warm", wf, ws, wt, ws / wf, wt / wf
}'
