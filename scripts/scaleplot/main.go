// Command scaleplot draws the scale curve of docs/performance.md ("Scale")
// from the output of the service's scale benchmarks
// (service/scale_test.go): a Markdown table on stdout, and with -svg an
// SVG of three panels, resync, heap and event cost per connection or
// event against the number of connections (log scale). Each figure is the
// median of the runs in the input (-count).
//
//	go test -run='^$' -bench=Scale -benchtime=1x -count=3 ./service/ | tee scale.txt
//	go run ./scripts/scaleplot -svg docs/scale.svg scale.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// A series is one curve: a benchmark (its name without the conns= part)
// and a metric.
type series struct {
	bench, unit string
}

// runs holds every value read: series → N → values.
type runs map[series]map[int][]float64

func main() {
	svg := flag.String("svg", "", "write the plot to this file")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: scaleplot [-svg out.svg] [bench output …]  (stdin without files)")
		flag.PrintDefaults()
	}
	flag.Parse()
	r := runs{}
	if flag.NArg() == 0 {
		r.read(os.Stdin)
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scaleplot:", err)
			os.Exit(1)
		}
		r.read(f)
		f.Close()
	}
	if len(r) == 0 {
		fmt.Fprintln(os.Stderr, "scaleplot: no BenchmarkScale lines in the input")
		os.Exit(1)
	}
	r.table(os.Stdout, columns)
	if v, k := r.median(series{"BenchmarkScaleResync", "ns/start"}, 0); k > 0 {
		fmt.Printf("\nA start with no user online (conns=0): %s ms (median of %d).\n", figure(v/1e6), k)
	}
	if _, ok := r[steps[0].s]; ok {
		fmt.Println()
		r.table(os.Stdout, steps)
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, r.plot(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "scaleplot:", err)
			os.Exit(1)
		}
	}
}

// read takes the BenchmarkScale… lines of a benchmark output:
// BenchmarkScaleResync/conns=1000/warm-2  1  36137688 ns/op  37302 cpu-ns/conn …
func (r runs) read(in io.Reader) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkScale") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		bench, n, ok := splitConns(name)
		if !ok {
			continue
		}
		line := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			line[f[i+1]] = v
		}
		if cpu, ok := line["cpu-ns/event"]; ok {
			// Each event is one live publish and actual/event actual
			// publishes (the others merged while they waited).
			line["cpu-ns/request"] = cpu / (1 + line["actual/event"])
		}
		for unit, v := range line {
			s := series{bench, unit}
			if r[s] == nil {
				r[s] = map[int][]float64{}
			}
			r[s][n] = append(r[s][n], v)
		}
	}
}

// splitConns takes "BenchmarkScaleResync/conns=1000/warm" apart:
// "BenchmarkScaleResync/warm", 1000.
func splitConns(name string) (bench string, n int, ok bool) {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if v, found := strings.CutPrefix(p, "conns="); found {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", 0, false
			}
			return strings.Join(slices.Delete(parts, i, i+1), "/"), n, true
		}
	}
	return "", 0, false
}

// median returns the median of series s at n, and how many runs it has.
func (r runs) median(s series, n int) (float64, int) {
	v := slices.Clone(r[s][n])
	if len(v) == 0 {
		return math.NaN(), 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], len(v)
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, len(v)
}

// sizes returns every N with a value, in order, except 0.
func (r runs) sizes() []int {
	var out []int
	for _, byN := range r {
		for n := range byN {
			if n > 0 && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// column is one column of the table and its scale.
type column struct {
	head  string
	s     series
	scale float64 // the value is divided by it
	unit  string
}

// steps are the columns of the second table: each step of a start, per
// connection, as the fake saw it (the fetch runs from the start, alongside
// the list and the probes), the heap once online, and the start's peaks.
var steps = func() []column {
	var out []column
	for _, kind := range []string{"warm", "cold"} {
		for _, st := range []struct{ head, unit string }{
			{"list", "list-ns/conn"}, {"probes", "probe-ns/conn"}, {"fetch (alongside)", "fetch-ns/conn"}, {"diff → online", "diff-ns/conn"},
		} {
			out = append(out, column{kind + ": " + st.head, series{"BenchmarkScaleResync/" + kind, st.unit}, 1000, "µs/conn"})
		}
	}
	for _, kind := range []string{"warm", "cold"} {
		out = append(out, column{"heap after a " + kind + " start", series{"BenchmarkScaleResync/" + kind, "heap-B/conn"}, 1, "B/conn"})
	}
	for _, kind := range []string{"warm", "cold"} {
		out = append(out, column{"peak heap, " + kind, series{"BenchmarkScaleResync/" + kind, "peak-heap-B/conn"}, 1, "B/conn"},
			column{"peak RSS, " + kind, series{"BenchmarkScaleResync/" + kind, "peak-rss-B/conn"}, 1, "B/conn"})
	}
	return out
}()

var columns = []column{
	{"resync warm, wall", series{"BenchmarkScaleResync/warm", "ns/conn"}, 1000, "µs/conn"},
	{"resync warm, CPU", series{"BenchmarkScaleResync/warm", "cpu-ns/conn"}, 1000, "µs/conn"},
	{"resync cold, wall", series{"BenchmarkScaleResync/cold", "ns/conn"}, 1000, "µs/conn"},
	{"resync cold, CPU", series{"BenchmarkScaleResync/cold", "cpu-ns/conn"}, 1000, "µs/conn"},
	{"heap", series{"BenchmarkScaleMemory", "B/conn"}, 1, "B/conn"},
	{"event, wall", series{"BenchmarkScaleEvents", "ns/op"}, 1000, "µs/event"},
	{"event, CPU", series{"BenchmarkScaleEvents", "cpu-ns/event"}, 1000, "µs/event"},
	{"actual publishes per event", series{"BenchmarkScaleEvents", "actual/event"}, 1, ""},
	{"CPU per publish", series{"BenchmarkScaleEvents", "cpu-ns/request"}, 1000, "µs"},
}

// table writes the medians as a Markdown table, with the number of runs
// of each figure when it is not the same for all.
func (r runs) table(w io.Writer, columns []column) {
	fmt.Fprint(w, "| connections |")
	for _, c := range columns {
		if c.unit == "" {
			fmt.Fprintf(w, " %s |", c.head)
		} else {
			fmt.Fprintf(w, " %s (%s) |", c.head, c.unit)
		}
	}
	fmt.Fprint(w, "\n|---:|")
	for range columns {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, n := range r.sizes() {
		fmt.Fprintf(w, "| %s |", thousands(n))
		for _, c := range columns {
			v, k := r.median(c.s, n)
			switch {
			case k == 0:
				fmt.Fprint(w, " – |")
			case k < 3:
				fmt.Fprintf(w, " %s (%d run%s) |", figure(v/c.scale), k, map[bool]string{true: "s"}[k > 1])
			default:
				fmt.Fprintf(w, " %s |", figure(v/c.scale))
			}
		}
		fmt.Fprintln(w)
	}
}

// figure formats v with three significant digits.
func figure(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// thousands writes n with a thin space between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}

// A panel is one plot: its curves share a y axis.
type panel struct {
	title, unit string
	scale       float64
	curves      []curve
	goal        float64 // a goal drawn as a line, when not 0
}

type curve struct {
	label string
	s     series
	color string
	dash  bool
}

var panels = []panel{
	{"resync, start → online", "µs per connection", 1000, []curve{
		{"warm, wall", series{"BenchmarkScaleResync/warm", "ns/conn"}, "#1f77b4", false},
		{"warm, CPU", series{"BenchmarkScaleResync/warm", "cpu-ns/conn"}, "#1f77b4", true},
		{"cold, wall", series{"BenchmarkScaleResync/cold", "ns/conn"}, "#d62728", false},
		{"cold, CPU", series{"BenchmarkScaleResync/cold", "cpu-ns/conn"}, "#d62728", true},
	}, 0},
	{"heap per connection", "bytes per connection", 1, []curve{
		{"new connections, looked up", series{"BenchmarkScaleMemory", "B/conn"}, "#2ca02c", false},
	}, 1024},
	{"presence event, whole process", "µs per event", 1000, []curve{
		{"wall", series{"BenchmarkScaleEvents", "ns/op"}, "#9467bd", false},
		{"CPU", series{"BenchmarkScaleEvents", "cpu-ns/event"}, "#9467bd", true},
		{"CPU per publish (live or actual)", series{"BenchmarkScaleEvents", "cpu-ns/request"}, "#ff7f0e", true},
	}, 0},
}

// Geometry of the SVG.
const (
	panelW, panelH = 300.0, 220.0 // plot area of one panel
	left, top      = 60.0, 40.0   // margins of each panel
	gap            = 90.0         // between panels
	legendH        = 70.0
)

// plot draws the panels side by side: x is the number of connections on a
// log scale, y each panel's cost from 0.
func (r runs) plot() []byte {
	sizes := r.sizes()
	var b strings.Builder
	width := left + float64(len(panels))*(panelW+gap) - gap + 30
	height := top + panelH + 45 + legendH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	lo, hi := math.Log10(float64(sizes[0])), math.Log10(float64(sizes[len(sizes)-1]))
	if hi == lo {
		hi = lo + 1
	}
	for pi, p := range panels {
		x0 := left + float64(pi)*(panelW+gap)
		xOf := func(n int) float64 { return x0 + (math.Log10(float64(n))-lo)/(hi-lo)*panelW }
		ymax := p.goal
		for _, c := range p.curves {
			for _, n := range sizes {
				if v, k := r.median(c.s, n); k > 0 {
					ymax = max(ymax, v/p.scale)
				}
			}
		}
		step := niceStep(ymax / 4)
		ymax = math.Ceil(ymax*1.05/step) * step
		if ymax == 0 {
			ymax, step = 1, 0.25
		}
		yOf := func(v float64) float64 { return top + panelH - v/ymax*panelH }
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, top-18, p.title)
		for v := 0.0; v <= ymax+step/2; v += step {
			y := yOf(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+panelW, y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-5, y+4, strconv.FormatFloat(v, 'f', -1, 64))
		}
		for _, n := range sizes {
			x := xOf(n)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, top, x, top+panelH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, top+panelH+15, thousands(n))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">connections (log scale)</text>`+"\n", x0+panelW/2, top+panelH+32)
		fmt.Fprintf(&b, `<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0-42, top+panelH/2, p.unit)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", x0, top, panelW, panelH)
		if p.goal > 0 {
			y := yOf(p.goal)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", x0, y, x0+panelW, y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#666">goal ≤ %s</text>`+"\n", x0+panelW-4, y-4, strconv.FormatFloat(p.goal, 'f', -1, 64))
		}
		for ci, c := range p.curves {
			var pts []string
			for _, n := range sizes {
				if v, k := r.median(c.s, n); k > 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(n), yOf(v/p.scale)))
				}
			}
			dash := ""
			if c.dash {
				dash = ` stroke-dasharray="5,3"`
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), c.color, dash)
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c.color)
			}
			ly := top + panelH + 50 + float64(ci)*15
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", x0, ly, x0+25, ly, c.color, dash)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x0+30, ly+4, c.label)
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceStep returns 1, 2 or 5 times a power of ten, at least v.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
