package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/internal/feed"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/presence"
	"github.com/pubpresence/pubpresence/status"
)

// BenchmarkEventStreams: PUBPRESENCE_BENCH_STREAMS event streams (default
// 1000) follow the feed while it takes PUBPRESENCE_BENCH_RATE changes a
// second (default 1000) for PUBPRESENCE_BENCH_SECONDS (default 10). The
// clients run in a child process (this test binary again), so that the
// CPU and heap measured are the server's alone; they parse every frame
// and time each change from feed.Set (its send time is in the text) to
// its arrival. Run it once:
//
//	go test -run='^$' -bench=EventStreams -benchtime=1x ./web/
//
// It reports CPU per change per stream (the server process's user+system
// time over changes × streams), heap and stack per stream (after GC, with
// the streams open and idle, against before they opened), and the
// delivery delay p50/p99 the clients saw. A stream that was sent a
// snapshot because it fell behind is counted (behind).
func BenchmarkEventStreams(b *testing.B) {
	streams := envInt("PUBPRESENCE_BENCH_STREAMS", 1000)
	rate := envInt("PUBPRESENCE_BENCH_RATE", 1000)
	seconds := envInt("PUBPRESENCE_BENCH_SECONDS", 10)
	for range b.N {
		runEventStreams(b, streams, rate, seconds)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func runEventStreams(b *testing.B, streams, rate, seconds int) {
	tokens, _ := ParseTokens([]byte(testToken))
	f := feed.New(feed.Config{History: 10000, WithIP: true})
	defer f.Close()
	m := metrics.New("bench")
	st := &status.Tracker{}
	st.SetPhase(status.Online)
	f.SetPhase(feed.Online)
	api := NewAPI(APIConfig{Feed: f, Tokens: tokens, MaxStreams: streams, Domains: []string{"example.org"}, Log: zerolog.Nop()}, m, st)
	srv := httptest.NewServer(Handler(m, st, api))
	defer srv.Close()
	defer api.Close()
	conns := 1000
	for i := range conns {
		f.Set(presence.Conn{JID: fmt.Sprintf("u%04d@example.org/r", i), Show: presence.Online, IP: "192.0.2.1", Since: time.Now().UTC()})
	}

	before := heapNow()
	child := exec.Command(os.Args[0], "-test.run=^TestEventStreamClients$", "-test.v")
	child.Env = append(os.Environ(), "PUBPRESENCE_SSE_CLIENTS="+srv.URL, "PUBPRESENCE_BENCH_STREAMS="+strconv.Itoa(streams))
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	lines := bufio.NewScanner(stdout)
	waitLine := func(prefix string) string {
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return strings.TrimPrefix(lines.Text(), prefix)
			}
		}
		b.Fatalf("the clients ended before %q: %v", prefix, lines.Err())
		return ""
	}
	waitLine("READY")
	if n := testutil.ToFloat64(m.HTTPStreams); int(n) != streams {
		b.Fatalf("%v streams open, want %d", n, streams)
	}
	during := heapNow()

	ru0 := rusage()
	start := time.Now()
	total := rate * seconds
	tick := time.Second / time.Duration(rate)
	b.ResetTimer()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * tick)); d > 0 {
			time.Sleep(d)
		}
		f.Set(presence.Conn{JID: fmt.Sprintf("u%04d@example.org/r", i%conns), Show: presence.Away,
			Text: strconv.FormatInt(time.Now().UnixNano(), 10), IP: "192.0.2.1", Since: time.Now().UTC()})
	}
	took := time.Since(start)
	// Every stream has every change: the clients say so.
	_, _ = fmt.Fprintf(stdin, "%d\n", total)
	result := waitLine("RESULT ")
	b.StopTimer()
	ru1 := rusage()
	var r clientResult
	if err := json.Unmarshal([]byte(result), &r); err != nil {
		b.Fatal(err)
	}
	cpu := (ru1 - ru0).Seconds()
	b.ReportMetric(cpu/float64(total)/float64(streams)*1e9, "cpu-ns/change/stream")
	b.ReportMetric(cpu/took.Seconds()*100, "cpu%")
	b.ReportMetric(r.CPU/took.Seconds()*100, "clients-cpu%")
	b.ReportMetric(float64(during.heap-before.heap)/float64(streams), "heap-B/stream")
	b.ReportMetric(float64(during.stack-before.stack)/float64(streams), "stack-B/stream")
	b.ReportMetric(r.P50*1000, "p50-ms")
	b.ReportMetric(r.P99*1000, "p99-ms")
	b.ReportMetric(r.Max*1000, "max-ms")
	b.ReportMetric(float64(r.Behind), "behind")
	b.ReportMetric(float64(total)/took.Seconds(), "changes/s")
	if r.Changes != int64(total)*int64(streams) {
		b.Errorf("the clients got %d changes, want %d × %d", r.Changes, total, streams)
	}
}

type memNow struct{ heap, stack uint64 }

func heapNow() memNow {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return memNow{ms.HeapAlloc, ms.StackInuse}
}

func rusage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clientResult is what the clients' process reports.
type clientResult struct {
	CPU           float64 // the clients' process: seconds of CPU from READY to the end
	Changes       int64
	Behind        int64
	P50, P99, Max float64 // seconds
}

// TestEventStreamClients is BenchmarkEventStreams's client process; it
// does nothing unless PUBPRESENCE_SSE_CLIENTS names the server. It opens
// the streams, prints READY once each has its snapshot, and, when a total
// arrives on stdin, waits until every stream has that many changes and
// prints RESULT with the delays.
func TestEventStreamClients(t *testing.T) {
	url := os.Getenv("PUBPRESENCE_SSE_CLIENTS")
	if url == "" {
		t.Skip("the client process of BenchmarkEventStreams")
	}
	streams := envInt("PUBPRESENCE_BENCH_STREAMS", 1000)
	// Delays in histograms of 0.1 ms buckets up to 1 s, one per stream,
	// merged when the streams end; the counts go to changes once per read.
	const buckets = 10001
	var (
		ready, changes, behind atomic.Int64
		mu                     sync.Mutex
		hist                   [buckets]int64
		wg                     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: streams}
	cl := &http.Client{Transport: tr}
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := cl.Do(req)
			if err != nil || resp.StatusCode != 200 {
				fmt.Fprintf(os.Stderr, "stream %d: %v %v\n", i, err, resp)
				os.Exit(1)
			}
			local := make([]int64, buckets)
			defer func() {
				mu.Lock()
				for i, n := range local {
					hist[i] += n
				}
				mu.Unlock()
			}()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			snaps, pending := 0, int64(0)
			change := false
			textKey := []byte(`"text":"`)
			for {
				if pending > 0 && r.Buffered() == 0 {
					changes.Add(pending)
					pending = 0
				}
				line, err := r.ReadSlice('\n')
				for err == bufio.ErrBufferFull { // a snapshot's data line: not read here
					_, err = r.ReadSlice('\n')
					line = nil
				}
				if err != nil {
					return
				}
				switch {
				case bytes.HasPrefix(line, []byte("event: ")):
					change = bytes.Equal(line, []byte("event: change\n"))
					if bytes.Equal(line, []byte("event: snapshot\n")) {
						if snaps++; snaps == 1 {
							ready.Add(1)
						} else {
							behind.Add(1)
						}
					}
				case change && bytes.HasPrefix(line, []byte("data: ")):
					i := bytes.Index(line, textKey)
					rest := line[i+len(textKey):]
					var ns int64
					for _, c := range rest[:bytes.IndexByte(rest, '"')] {
						ns = ns*10 + int64(c-'0')
					}
					local[min(buckets-1, max(0, int(time.Since(time.Unix(0, ns))/(100*time.Microsecond))))]++
					pending++
				}
			}
		}()
	}
	for ready.Load() < int64(streams) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu0 := rusage()
	fmt.Println("READY")
	var total int64
	if _, err := fmt.Fscan(os.Stdin, &total); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for changes.Load() < total*int64(streams) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	var n int64
	for _, c := range hist {
		n += c
	}
	// pct is the upper bound of the bucket holding the p-quantile.
	pct := func(p float64) float64 {
		want, seen := int64(p*float64(n)), int64(0)
		for i, c := range hist {
			if seen += c; seen >= max(want, 1) {
				return float64(i+1) * 1e-4
			}
		}
		return 0
	}
	res, _ := json.Marshal(clientResult{CPU: (rusage() - cpu0).Seconds(), Changes: changes.Load(), Behind: behind.Load(), P50: pct(0.5), P99: pct(0.99), Max: pct(1)})
	fmt.Println("RESULT " + string(res))
	_, _ = io.Copy(io.Discard, os.Stdin)
}
