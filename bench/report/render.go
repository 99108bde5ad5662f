package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// toolLabel says how each tool stored the history.
var toolLabel = map[string]string{
	"mis":    "mis (import / export)",
	"restic": "restic (backup of the raw image)",
	"borg":   "borg (create, zstd,3)",
	"desync": "desync (make / extract)",
	"casync": "casync (make / extract)",
	"qcow2":  "qcow2 backing chain (qemu-img rebase)",
	"zstd":   "zstd -3 -T0 per image",
	"raw":    "raw copies (cp --sparse=always)",
	"image":  "the original image file / loop mount",
}

func label(t string) string {
	if l, ok := toolLabel[t]; ok {
		return l
	}
	return t
}

// peers are the store tools a user would pick instead of mis: the goals
// compare against them (not against the raw-copy baseline).
func (res *results) peers() []string {
	var out []string
	for _, t := range res.storeTools() {
		if t != "mis" && t != "raw" {
			out = append(out, t)
		}
	}
	return out
}

func render(in, machine, outDir string) error {
	res, err := loadResults(in)
	if err != nil {
		return err
	}
	var mach []byte
	if machine != "" {
		if mach, err = os.ReadFile(machine); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	md := markdown(res, string(mach))
	if err := os.WriteFile(filepath.Join(outDir, "compare.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, "compare.svg"), []byte(chart(res)), 0o644)
}

func mib(n float64) string { return fmt.Sprintf("%.1f MiB", n/(1<<20)) }

func secs(s float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", s)
}

func pct(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", 100*a/b)
}

func check(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func markdown(res *results, machine string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	app, alloc := res.totalApparent()
	p("# mis against restic, borg, desync, casync, qcow2 and zstd\n\n")
	p("Produced by `bench/compare.sh%s` on %s; timings are medians of %d run(s), tools interleaved; ", map[bool]string{true: " --quick", false: ""}[res.mode == "quick"], res.date, res.runs)
	p("page cache dropped before every timed step; each add and restore includes a final `sync`; every restore is checked with `cmp` against its input. Chart: [compare.svg](compare.svg).\n\n")
	p("Corpus (%d images, %s apparent, %s allocated):\n\n| version | apparent | allocated | image |\n|---|---:|---:|---|\n", len(res.images), mib(float64(app)), mib(float64(alloc)))
	for _, im := range res.images {
		p("| %s | %s | %s | `%s` |\n", im.Image, mib(float64(im.Apparent)), mib(float64(im.Allocated)), filepath.Base(im.Path))
	}

	p("\n## Whole history\n\n| tool | stored (apparent) | stored (allocated) | of raw apparent | of raw allocated | add, all versions (s) | restore, all versions (s) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range res.storeTools() {
		st := res.stored[t]
		var addSum, resSum float64
		for _, im := range res.images {
			a, _ := medianOf(res.add, t, im.Image)
			r, _ := medianOf(res.restore, t, im.Image)
			addSum += a
			resSum += r
		}
		p("| %s | %s | %s | %s | %s | %.2f | %.2f |\n", label(t), mib(float64(st.Apparent)), mib(float64(st.Allocated)),
			pct(float64(st.Apparent), float64(app)), pct(float64(st.Apparent), float64(alloc)), addSum, resSum)
	}

	table := func(title string, m map[string]map[string][]float64, format func(float64, bool) string) {
		tools := res.storeTools()
		p("\n## %s\n\n| version |", title)
		for _, t := range tools {
			p(" %s |", t)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", len(tools)))
		for _, im := range res.images {
			p("| %s |", im.Image)
			for _, t := range tools {
				v, ok := medianOf(m, t, im.Image)
				p(" %s |", format(v, ok))
			}
			p("\n")
		}
	}
	table("Time to add each version (s)", res.add, secs)
	table("Bytes the store grew by, per version", res.added, func(v float64, ok bool) string {
		if !ok {
			return "–"
		}
		return mib(v)
	})
	table("Time to restore each version (s; mis: export)", res.restore, secs)

	if len(res.read) > 0 || len(res.walk) > 0 {
		last := res.images[len(res.images)-1].Image
		for i := len(res.images) - 1; i >= 0; i-- { // the mounted version: the last of the first image's history
			if strings.SplitN(res.images[i].Image, ":", 2)[0] == strings.SplitN(res.images[0].Image, ":", 2)[0] {
				last = res.images[i].Image
				break
			}
		}
		p("\n## Mounted (%s), cold cache\n\n| tool | sequential read of the whole image (MB/s) | tree walk, `tar cf /dev/null` (files/s) |\n|---|---:|---:|\n", last)
		rows := []string{"image"}
		for _, t := range res.tools {
			if t != "image" {
				rows = append(rows, t)
			}
		}
		for _, t := range rows {
			r, rok := res.read[t]
			w, wok := res.walk[t]
			if !rok && !wok {
				continue
			}
			rs, ws := "–", "–"
			if rok {
				rs = fmt.Sprintf("%.0f", median(r))
			}
			if wok {
				ws = fmt.Sprintf("%.0f (%d files)", median(w), res.walkFiles[t])
			}
			p("| %s |%s | %s |\n", label(t), " "+rs, ws)
		}
		p("\nmis serves `DIR/disk.raw` and the walked tree `DIR/pN/` itself; restic, borg and desync serve the raw image file, whose filesystem is loop-mounted read-only (`-o ro,noload`) for the walk.\n")
	}

	res.historyFigures(p)
	res.goals(p)
	if machine != "" {
		p("\n## Machine and versions\n\n```\n%s```\n", machine)
	}
	return b.String()
}

// misTotal is the size of mis's repository directory (packs and index),
// else its packs alone.
func (res *results) misTotal() int64 {
	if st, ok := res.stored["mis"]; ok {
		return st.Apparent
	}
	if res.bound != nil {
		return res.bound.Stored
	}
	return 0
}

// historyFigures prints the per-version import figures against restic's.
func (res *results) historyFigures(p func(string, ...any)) {
	p("\n## History figures\n\n| version | mis import (s) | mis added | restic backup (s) | restic added |\n|---|---:|---:|---:|---:|\n")
	for _, im := range res.images {
		mi, _ := medianOf(res.add, "mis", im.Image)
		ma, _ := medianOf(res.added, "mis", im.Image)
		ri, rok := medianOf(res.add, "restic", im.Image)
		ra, _ := medianOf(res.added, "restic", im.Image)
		p("| %s | %.2f | %s | %s | %s |\n", im.Image, mi, mib(ma), secs(ri, rok), mib(ra))
	}
	app, alloc := res.totalApparent()
	if st, ok := res.stored["mis"]; ok {
		p("\nmis stores the whole history in %s: a reduction of %.2f%% against the raw images' apparent size and %.2f%% against their allocated size.\n",
			mib(float64(st.Apparent)), 100*(1-float64(st.Apparent)/float64(app)), 100*(1-float64(st.Apparent)/float64(alloc)))
	}
	if b := res.bound; b != nil {
		bound := b.FilesZstd + b.Manifest + b.Residual
		ours := res.misTotal()
		p("\nIdeal file-level bound: the %d distinct file contents (of %d files in all versions' ext filesystems, BLAKE3 over loop mounts), each compressed with `zstd -3` (%s), plus our compressed manifests (%s) and residual data (%s) = **%s**; mis stores %s in its packs, %s with its index (the whole repository directory), %.1f%% %s the bound.\n",
			b.UniqueFiles, b.FilesSeen, mib(float64(b.FilesZstd)), mib(float64(b.Manifest)), mib(float64(b.Residual)), mib(float64(bound)),
			mib(float64(b.Stored)), mib(float64(ours)), math.Abs(100*(float64(ours)/float64(bound)-1)), map[bool]string{true: "above", false: "below"}[ours >= bound])
	}
	if len(res.reimport) > 0 {
		p("\nRe-import of an unchanged image (the first version again, `--parent` = itself): %.2f s, %.1f%% of its first import.\n", median(res.reimportS), 100*median(res.reimport))
	}
}

// goals checks the figures against the goals of issues 4 and 7.
func (res *results) goals(p func(string, ...any)) {
	p("\n## Goals\n\n| goal | figure | |\n|---|---|---|\n")
	app, _ := res.totalApparent()
	mst, ok := res.stored["mis"]
	if !ok {
		return
	}
	ours := float64(mst.Apparent)
	worst := ""
	below := true
	for _, t := range res.peers() {
		if float64(res.stored[t].Apparent) <= ours {
			below = false
			worst += " " + t
		}
	}
	p("| stored bytes below every peer's | mis %s; not below:%s | %s |\n", mib(ours), map[bool]string{true: " none", false: worst}[below], check(below))
	p("| stored bytes below 6%% of raw apparent | %s | %s |\n", pct(ours, float64(app)), check(ours < 0.06*float64(app)))
	if rst, ok := res.stored["restic"]; ok {
		p("| history stored below restic's | mis %s, restic %s | %s |\n", mib(ours), mib(float64(rst.Apparent)), check(ours < float64(rst.Apparent)))
	}
	if b := res.bound; b != nil {
		bound := float64(b.FilesZstd + b.Manifest + b.Residual)
		ours := float64(res.misTotal())
		p("| within 15%% of the file-level bound | %.2fx the bound | %s |\n", ours/bound, check(ours <= 1.15*bound))
	}
	seenName := map[string]bool{}
	var firstImport float64
	for _, im := range res.images {
		name := strings.SplitN(im.Image, ":", 2)[0]
		mi, _ := medianOf(res.add, "mis", im.Image)
		if !seenName[name] {
			seenName[name] = true
			if firstImport == 0 {
				firstImport = mi
			}
			continue
		}
		if ri, ok := medianOf(res.add, "restic", im.Image); ok {
			p("| import of changed %s faster than restic backup | %.2f s vs %.2f s | %s |\n", im.Image, mi, ri, check(mi < ri))
		}
		if firstImport > 0 && name == strings.SplitN(res.images[0].Image, ":", 2)[0] {
			p("| import of %s under 20%% of the first import (goal for ~5%% changed files) | %.1f%% | %s |\n", im.Image, 100*mi/firstImport, check(mi < 0.2*firstImport))
		}
	}
	if len(res.reimport) > 0 {
		r := median(res.reimport)
		p("| unchanged re-import under 10%% of first import | %.1f%% | %s |\n", 100*r, check(r < 0.1))
	}
	for _, im := range res.images {
		me, ok1 := medianOf(res.restore, "mis", im.Image)
		cp, ok2 := medianOf(res.restore, "raw", im.Image)
		if ok1 && ok2 && cp > 0 {
			p("| export of %s within 1.5x of cp --sparse | %.2fx | %s |\n", im.Image, me/cp, check(me <= 1.5*cp))
		}
	}
	if m, ok := res.read["mis"]; ok {
		for _, t := range []string{"restic", "desync"} {
			if o, ok := res.read[t]; ok {
				p("| mounted sequential read ahead of %s mount | %.0f vs %.0f MB/s | %s |\n", t, median(m), median(o), check(median(m) > median(o)))
			}
		}
	}
}
