package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// record is one measurement line written by compare.sh. Which fields are
// set depends on Kind:
//
//	mode      Mode ("quick" or "full"), Runs, Date
//	image     Image, Path, Apparent, Allocated
//	add       Tool, Image, Run, Seconds, Added (bytes the store grew by)
//	restore   Tool, Image, Run, Seconds
//	stored    Tool, Apparent, Allocated (the store after the last run)
//	read      Tool, Run, MBps (sequential read of the mounted image, cold)
//	walk      Tool, Run, Files, Seconds (tar cf /dev/null of the mounted tree, cold)
//	reimport  Run, Seconds, First (first import of the same image)
//	bound     UniqueFiles, FilesSeen, FilesZstd, Manifest, Residual, Stored
type record struct {
	Kind        string  `json:"kind"`
	Mode        string  `json:"mode"`
	Runs        int     `json:"runs"`
	Date        string  `json:"date"`
	Tool        string  `json:"tool"`
	Image       string  `json:"image"`
	Path        string  `json:"path"`
	Run         int     `json:"run"`
	Seconds     float64 `json:"seconds"`
	First       float64 `json:"first"`
	Added       int64   `json:"added"`
	Apparent    int64   `json:"apparent"`
	Allocated   int64   `json:"allocated"`
	MBps        float64 `json:"mbps"`
	Files       int64   `json:"files"`
	UniqueFiles int64   `json:"unique_files"`
	FilesSeen   int64   `json:"files_seen"`
	FilesZstd   int64   `json:"files_zstd"`
	Manifest    int64   `json:"manifest"`
	Residual    int64   `json:"residual"`
	Stored      int64   `json:"stored"`
}

// results are the measurements grouped for the tables.
type results struct {
	mode, date string
	runs       int
	images     []record                        // in corpus order
	tools      []string                        // in first-seen order
	add        map[string]map[string][]float64 // tool -> image -> seconds per run
	added      map[string]map[string][]float64 // tool -> image -> bytes per run
	restore    map[string]map[string][]float64
	stored     map[string]record
	read       map[string][]float64
	walk       map[string][]float64 // files/s
	walkFiles  map[string]int64
	reimport   []float64 // ratio to first import
	reimportS  []float64
	bound      *record
}

func loadResults(path string) (*results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &results{
		add: map[string]map[string][]float64{}, added: map[string]map[string][]float64{},
		restore: map[string]map[string][]float64{}, stored: map[string]record{},
		read: map[string][]float64{}, walk: map[string][]float64{}, walkFiles: map[string]int64{},
	}
	seenTool := map[string]bool{}
	tool := func(t string) {
		if t != "" && !seenTool[t] {
			seenTool[t] = true
			res.tools = append(res.tools, t)
		}
	}
	put := func(m map[string]map[string][]float64, t, img string, v float64) {
		if m[t] == nil {
			m[t] = map[string][]float64{}
		}
		m[t][img] = append(m[t][img], v)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		tool(r.Tool)
		switch r.Kind {
		case "mode":
			res.mode, res.date, res.runs = r.Mode, r.Date, r.Runs
		case "image":
			res.images = append(res.images, r)
		case "add":
			put(res.add, r.Tool, r.Image, r.Seconds)
			put(res.added, r.Tool, r.Image, float64(r.Added))
		case "restore":
			put(res.restore, r.Tool, r.Image, r.Seconds)
		case "stored":
			res.stored[r.Tool] = r
		case "read":
			res.read[r.Tool] = append(res.read[r.Tool], r.MBps)
		case "walk":
			if r.Seconds > 0 {
				res.walk[r.Tool] = append(res.walk[r.Tool], float64(r.Files)/r.Seconds)
			}
			res.walkFiles[r.Tool] = r.Files
		case "reimport":
			res.reimportS = append(res.reimportS, r.Seconds)
			if r.First > 0 {
				res.reimport = append(res.reimport, r.Seconds/r.First)
			}
		case "bound":
			b := r
			res.bound = &b
		default:
			return nil, fmt.Errorf("%s:%d: unknown kind %q", path, line, r.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(res.images) == 0 {
		return nil, fmt.Errorf("%s: no images recorded", path)
	}
	sort.SliceStable(res.tools, func(i, j int) bool { return toolRank(res.tools[i]) < toolRank(res.tools[j]) })
	return res, nil
}

// toolOrder is the order of tools in tables and charts (others follow).
var toolOrder = []string{"mis", "restic", "borg", "desync", "casync", "qcow2", "zstd", "raw"}

func toolRank(t string) int {
	for i, o := range toolOrder {
		if o == t {
			return i
		}
	}
	return len(toolOrder)
}

// median of the values; NaN-free: 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (res *results) totalApparent() (app, alloc int64) {
	for _, im := range res.images {
		app += im.Apparent
		alloc += im.Allocated
	}
	return app, alloc
}

// storeTools are the tools that stored the history (have a stored record),
// in first-seen order.
func (res *results) storeTools() []string {
	var out []string
	for _, t := range res.tools {
		if _, ok := res.stored[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// medianOf returns the median of m[tool][image].
func medianOf(m map[string]map[string][]float64, tool, image string) (float64, bool) {
	v, ok := m[tool][image]
	return median(v), ok && len(v) > 0
}
