package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/metrics"
)

// TestOperationsDoc keeps docs/operations.md true to the code: the metrics
// its alert rules use are registered, the log messages it quotes are
// logged somewhere, and its SIGHUP table lists exactly the keys a reload
// applies.
func TestOperationsDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	registered := make(map[string]bool)
	ch := make(chan *prometheus.Desc)
	go func() { metrics.New("test").Registry.Describe(ch); close(ch) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			registered[m[1]] = true
		}
	}
	used := regexp.MustCompile(`pubpresence_[a-z_]+`).FindAllString(doc, -1)
	if len(used) < 10 {
		t.Fatalf("found %d metric names in the doc, want the alert rules' (≥ 10)", len(used))
	}
	for _, name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !registered[base] {
			t.Errorf("docs/operations.md uses %s, which is not registered", name)
		}
	}

	source := goSource(t)
	var messages []string
	for _, m := range regexp.MustCompile(`"message":"([^"]+)"`).FindAllStringSubmatch(doc, -1) {
		messages = append(messages, m[1])
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\| (?:info|warn|error|debug)").FindAllStringSubmatch(doc, -1) {
		messages = append(messages, m[1])
	}
	if len(messages) < 15 {
		t.Fatalf("found %d quoted log messages, want the logs table's and the examples' (≥ 15)", len(messages))
	}
	for _, msg := range messages {
		// A message may name a node, as the code builds it from the
		// configuration: each part around the default name must be there.
		for _, part := range strings.Split(msg, "presence/actual") {
			if !strings.Contains(source, part) {
				t.Errorf("docs/operations.md quotes the log message %q, which no Go file logs", msg)
				break
			}
		}
	}

	table := doc[strings.Index(doc, "| key | takes effect |"):]
	table = table[:strings.Index(table, "\n\n")]
	var keys []string
	for _, m := range regexp.MustCompile("`([a-z_]+\\.[a-z_]+)`").FindAllStringSubmatch(table, -1) {
		keys = append(keys, m[1])
	}
	want := config.ReloadableKeys()
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("the SIGHUP table lists %q; a reload applies %q", keys, want)
	}
}

// goSource returns the module's non-test Go source, concatenated.
func goSource(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "integration") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sb.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
