package metrics

import (
	"bufio"
	"maps"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/pubpresence/pubpresence/status"
)

// docPath is the metrics documentation, relative to this package.
const docPath = "../docs/metrics.md"

// metricInfo is what the documentation and the registry must agree on.
type metricInfo struct {
	Type   string   // "counter", "gauge", "histogram", …
	Labels []string // variable label names, sorted
}

var (
	// A table row of docs/metrics.md: | `name` | type | labels | meaning |
	docRowRE = regexp.MustCompile("^\\|\\s*`(pubpresence_[a-z0-9_]+)`\\s*\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|\\s*$")
	// In the Labels cell, a label is a backquoted name directly followed by a colon.
	docLabelRE = regexp.MustCompile("`([a-zA-Z_][a-zA-Z0-9_]*)`:")
	// Desc.String: Desc{fqName: "…", help: "…", unit: "…", constLabels: {…}, variableLabels: {a,b}}
	descNameRE   = regexp.MustCompile(`^Desc\{fqName: "([^"]*)"`)
	descLabelsRE = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
)

// readDoc parses the metrics table of docs/metrics.md.
func readDoc(t *testing.T) map[string]metricInfo {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := make(map[string]metricInfo)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(text, "| `pubpresence_") && !strings.HasPrefix(text, "|`pubpresence_") {
			continue
		}
		m := docRowRE.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("%s:%d: table row not in the form | `name` | type | labels | meaning |", docPath, line)
			continue
		}
		if _, dup := doc[m[1]]; dup {
			t.Errorf("%s:%d: %s listed twice", docPath, line, m[1])
		}
		var labels []string
		for _, l := range docLabelRE.FindAllStringSubmatch(m[3], -1) {
			labels = append(labels, l[1])
		}
		slices.Sort(labels)
		doc[m[1]] = metricInfo{Type: strings.TrimSpace(m[2]), Labels: labels}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(doc) == 0 {
		t.Fatalf("%s: no metrics table found", docPath)
	}
	return doc
}

// touch creates one child of every metric vector in m's fields, so that
// each vector shows in a Gather.
func touch(t *testing.T, m *Metrics) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue // the series cache
		}
		c, ok := f.Interface().(prometheus.Collector)
		if !ok || f.Type() == reflect.TypeFor[*prometheus.Registry]() {
			continue
		}
		with := f.MethodByName("WithLabelValues")
		if !with.IsValid() {
			continue
		}
		var args []reflect.Value
		for range describe(t, c)[0].labels {
			args = append(args, reflect.ValueOf("x"))
		}
		with.Call(args)
	}
}

type desc struct {
	name   string
	labels []string // in declaration order
}

// describe returns what c describes, read from prometheus.Desc.String (the
// Desc's fields are not exported).
func describe(t *testing.T, c prometheus.Collector) []desc {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	var out []desc
	for d := range ch {
		s := d.String()
		name, labels := descNameRE.FindStringSubmatch(s), descLabelsRE.FindStringSubmatch(s)
		if name == nil || labels == nil {
			t.Fatalf("cannot parse %s", s)
		}
		var ls []string
		if labels[1] != "" {
			ls = strings.Split(labels[1], ",")
		}
		out = append(out, desc{name: name[1], labels: ls})
	}
	return out
}

// registered returns the pubpresence_* metrics of m's registry, with types
// from a Gather after touching every vector.
func registered(t *testing.T, m *Metrics) map[string]metricInfo {
	t.Helper()
	touch(t, m)
	types := make(map[string]string)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		types[mf.GetName()] = strings.ToLower(mf.GetType().String())
	}
	reg := make(map[string]metricInfo)
	for _, d := range describe(t, m.Registry) {
		switch {
		case strings.HasPrefix(d.name, "pubpresence_"):
		case strings.HasPrefix(d.name, "go_"), strings.HasPrefix(d.name, "process_"):
			continue
		default:
			t.Errorf("registered metric %s has none of the prefixes pubpresence_, go_, process_", d.name)
			continue
		}
		typ, ok := types[d.name]
		if !ok {
			t.Errorf("%s is registered but not gathered: is it a field of Metrics?", d.name)
		}
		labels := slices.Sorted(slices.Values(d.labels))
		reg[d.name] = metricInfo{Type: typ, Labels: labels}
	}
	return reg
}

// compareDoc lists the differences between the documented metrics and the
// registered ones.
func compareDoc(doc, reg map[string]metricInfo) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(reg)) {
		r := reg[name]
		d, ok := doc[name]
		switch {
		case !ok:
			problems = append(problems, name+": registered but not in "+docPath)
		case d.Type != r.Type:
			problems = append(problems, name+": documented as "+d.Type+", registered as "+r.Type)
		case !slices.Equal(d.Labels, r.Labels):
			problems = append(problems, name+": documented labels ["+strings.Join(d.Labels, " ")+"], registered ["+strings.Join(r.Labels, " ")+"]")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(doc)) {
		if _, ok := reg[name]; !ok {
			problems = append(problems, name+": in "+docPath+" but not registered")
		}
	}
	return problems
}

// TestMetricsDocumented checks that docs/metrics.md lists exactly the
// registered pubpresence_* metrics, with their types and label names.
func TestMetricsDocumented(t *testing.T) {
	doc := readDoc(t)
	reg := registered(t, New("test"))
	if len(reg) == 0 {
		t.Fatal("no pubpresence_* metric registered")
	}
	for _, p := range compareDoc(doc, reg) {
		t.Error(p)
	}
}

// TestMetricsCompareDoc checks that compareDoc reports every kind of
// difference, so that TestMetricsDocumented cannot pass by accident.
func TestMetricsCompareDoc(t *testing.T) {
	base := map[string]metricInfo{
		"pubpresence_a_total": {Type: "counter", Labels: []string{"kind", "result"}},
		"pubpresence_b":       {Type: "gauge"},
	}
	clone := func(edit func(m map[string]metricInfo)) map[string]metricInfo {
		m := maps.Clone(base)
		edit(m)
		return m
	}
	for _, tc := range []struct {
		name     string
		doc, reg map[string]metricInfo
		want     string // substring of the only problem; "" for none
	}{
		{name: "equal", doc: base, reg: base},
		{name: "undocumented metric", doc: base,
			reg:  clone(func(m map[string]metricInfo) { m["pubpresence_new_total"] = metricInfo{Type: "counter"} }),
			want: "pubpresence_new_total: registered but not in"},
		{name: "stale doc row", reg: base,
			doc:  clone(func(m map[string]metricInfo) { m["pubpresence_gone"] = metricInfo{Type: "gauge"} }),
			want: "pubpresence_gone: in ../docs/metrics.md but not registered"},
		{name: "type", reg: base,
			doc:  clone(func(m map[string]metricInfo) { m["pubpresence_b"] = metricInfo{Type: "counter"} }),
			want: "pubpresence_b: documented as counter, registered as gauge"},
		{name: "missing label", reg: base,
			doc: clone(func(m map[string]metricInfo) {
				m["pubpresence_a_total"] = metricInfo{Type: "counter", Labels: []string{"kind"}}
			}),
			want: "pubpresence_a_total: documented labels [kind], registered [kind result]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := compareDoc(tc.doc, tc.reg)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("problems %q, want one with %q", got, tc.want)
			}
		})
	}
}

// TestMetricsLint runs promlint over everything the registry exposes, as
// testutil.GatherAndLint does (testutil itself needs a go.mod entry for
// github.com/kylelemons/godebug that promlint does not).
func TestMetricsLint(t *testing.T) {
	m := New("test")
	touch(t, m)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// gauges returns the series of the gauge name in m's registry, keyed by
// their labels as "a=x,b=y" (sorted by label name).
func gauges(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, lp := range s.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(ls, ",")] = s.GetGauge().GetValue()
		}
	}
	return out
}

// TestMetricsBuildInfo checks the one series of pubpresence_build_info.
func TestMetricsBuildInfo(t *testing.T) {
	got := gauges(t, New("v1.2.3"), "pubpresence_build_info")
	want := map[string]float64{"goversion=" + runtime.Version() + ",version=v1.2.3": 1}
	if !maps.Equal(got, want) {
		t.Errorf("build_info %v, want %v", got, want)
	}
}

// TestSetPhase checks that exactly the current phase's series is 1, and
// the state and connected series that follow from it.
func TestSetPhase(t *testing.T) {
	m := New("test")
	steps := []struct {
		set                   status.Phase
		init, online, standby float64
		connected             float64
	}{
		{status.Connecting, 1, 0, 0, 0}, // New's
		{status.Nodes, 1, 0, 0, 1},
		{status.Discovering, 1, 0, 0, 1},
		{status.Converging, 1, 0, 0, 1},
		{status.Online, 0, 1, 0, 1},
		{status.Online, 0, 1, 0, 1},
		{status.Connecting, 1, 0, 0, 0},
		{status.Standby, 0, 0, 1, 0},
		{status.Online, 0, 1, 0, 1},
	}
	for i, step := range steps {
		if i > 0 {
			m.SetPhase(step.set)
		}
		got := gauges(t, m, "pubpresence_state")
		want := map[string]float64{"state=init": step.init, "state=online": step.online, "state=standby": step.standby}
		if !maps.Equal(got, want) {
			t.Errorf("after SetPhase(%s): state %v, want %v", step.set, got, want)
		}
		phases := gauges(t, m, "pubpresence_phase")
		for _, p := range status.Phases {
			if v := phases["phase="+p.String()]; v != b2f(p == step.set) {
				t.Errorf("after SetPhase(%s): phase %s = %v", step.set, p, v)
			}
		}
		if c := gauges(t, m, "pubpresence_connected")[""]; c != step.connected {
			t.Errorf("after SetPhase(%s): connected %v, want %v", step.set, c, step.connected)
		}
	}
}

// TestCachedSeries checks that the cached helpers count on the same series
// as the label vectors, and that distinct labels stay distinct.
func TestCachedSeries(t *testing.T) {
	m := New("test")
	for range 3 {
		m.Request("presence/live", "publish", "ok", 2*time.Millisecond)
	}
	m.Request("presence/actual", "retract", "error", time.Millisecond)
	m.Event("available")
	m.Event("available")
	m.Event("unavailable")
	value := func(c prometheus.Counter) float64 {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	for _, tc := range []struct {
		c    prometheus.Counter
		want float64
	}{
		{m.Requests.WithLabelValues("presence/live", "publish", "ok"), 3},
		{m.Requests.WithLabelValues("presence/actual", "retract", "error"), 1},
		{m.Requests.WithLabelValues("presence/live", "publish", "error"), 0},
		{m.Events.WithLabelValues("available"), 2},
		{m.Events.WithLabelValues("unavailable"), 1},
	} {
		if got := value(tc.c); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.c.Desc(), got, tc.want)
		}
	}
	var d dto.Metric
	if err := m.RequestSeconds.WithLabelValues("presence/live", "publish").(prometheus.Histogram).Write(&d); err != nil {
		t.Fatal(err)
	}
	if n := d.GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("live publish durations: %d samples, want 3", n)
	}
}
