package service

import (
	"context"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pubpresence/pubpresence/config"
	"github.com/pubpresence/pubpresence/metrics"
	"github.com/pubpresence/pubpresence/status"
)

// Benchmarks of issue 17 (scale): the cost per connection from 1 000 to
// 1 000 000 connections, in process against the fake server
// (fakeserver_test.go), with N distinct users of one connection each.
//
//	go test -run='^$' -bench='Scale(Resync|Memory)' -benchtime=1x -count=3 -timeout=3h ./service/
//	go test -run='^$' -bench='ScaleEvents' -benchmem -count=3 -timeout=3h ./service/
//	PUBPRESENCE_SCALE_SIZES=1000,10000,100000,1000000 go test … (the sizes; the default stops at 100 000)
//	PUBPRESENCE_SCALE_LOG=1 go test … (the service's log on stderr: its steps and their times)
//	PUBPRESENCE_HEAP_PROFILE=/tmp/heap go test … -memprofilerate=512 (the live heap once online, per run)
//
// scripts/perf.sh runs them; docs/performance.md ("Scale") has the curve,
// drawn by scripts/scaleplot from their output.
//
//   - BenchmarkScaleResync: the service starts against a fake with N users
//     online (listed with Prosody's details, each answering its probe) and
//     the actual node holding the same N items (warm) or N stale ones
//     (cold: N retracts and N publishes). The op is start → online; ns/conn
//     is that over N. conns=0 is the fixed cost of a start.
//   - BenchmarkScaleEvents: the whole process per presence change, as
//     BenchmarkServiceEvents, with N connections tracked (by a warm start)
//     and the changes spread over all of them.
//   - BenchmarkScaleMemory: BenchmarkMemoryPerConn's measure at each N.
//
// cpu-ns/… is the CPU time of the whole process (the fake's included:
// getrusage) over the timed part, where ns/… is the wall time.

// scaleSizes returns the Ns to run: PUBPRESENCE_SCALE_SIZES, or 1 000 to
// 100 000.
func scaleSizes(tb testing.TB) []int {
	v := os.Getenv("PUBPRESENCE_SCALE_SIZES")
	if v == "" {
		return []int{1000, 10000, 100000}
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1000000 {
			tb.Fatalf("PUBPRESENCE_SCALE_SIZES: %q is not a number of connections from 1 to 1000000", s)
		}
		out = append(out, n)
	}
	return out
}

// scaleWait bounds each wait of these benchmarks: a guard against
// hanging, not a speed assertion.
const scaleWait = 30 * time.Minute

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// liveHeap returns the live heap after two GCs.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// scaleFixture is a service online against a fake with n users online.
type scaleFixture struct {
	f       *fakeServer
	rs      *runningService
	n       int
	took    time.Duration // start → online
	start   time.Time
	cpu     time.Duration // the process's CPU time meanwhile
	heap0   uint64        // live heap before the start (the fake's only)
	peak    peakMemory    // the high-water marks of the start
	stopped bool
}

// scaleStart starts a service against a fake with n users online and the
// actual node as items says, in roster mode (the users are probed; no
// wait for a privilege grant), and returns once it is online. The clock
// runs from just before Run to the phase online.
func scaleStart(tb testing.TB, n int, items fakeItems, set ...func(*fakeServer)) *scaleFixture {
	tb.Helper()
	f := newFakeServer(tb)
	f.sessions, f.items = n, items
	for _, s := range set {
		s(f)
	}
	fx := &scaleFixture{f: f, n: n}
	rs := &runningService{m: metrics.New("bench"), st: &status.Tracker{}, done: make(chan error, 1)}
	cfg := f.config()
	cfg.Tracking.Mode = config.TrackRoster
	// The deadline for the probes' answers (30 s by default) would cut the
	// start short at a million users (the rest are tracked after online):
	// the curve is that of the work.
	cfg.Sync.InitTimeout.Duration = scaleWait
	log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
	if os.Getenv("PUBPRESENCE_SCALE_LOG") != "" {
		// The service's steps, each with the time since the start.
		t0 := time.Now()
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}}).
			Level(zerolog.InfoLevel).Hook(zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
			e.Dur("at_ms", time.Since(t0))
		}))
	}
	rs.svc = New(cfg, log, rs.m, rs.st)
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	fx.rs = rs
	tb.Cleanup(func() { fx.stop(tb) })
	fx.heap0 = liveHeap()

	watch := watchPeak(tb)
	cpu0 := cpuTime(tb)
	fx.start = time.Now()
	go func() { rs.done <- rs.svc.Run(ctx) }()
	fx.wait(tb, "online", func() bool { return f.online.Load() > 0 && rs.st.Phase() == status.Online })
	fx.took, fx.cpu = time.Since(fx.start), cpuTime(tb)-cpu0
	fx.peak = watch()
	return fx
}

// peakMemory is how far the process's memory rose above where it was
// when the watch began: the heap's objects (live, or dead and not yet
// swept: what the GC lets the heap reach), sampled every 2 ms, and the
// resident set's high-water mark (VmHWM, reset through
// /proc/self/clear_refs; 0 where that is refused). Both hold the fake's
// share: its answers, built and written during the start.
type peakMemory struct {
	heap, rss float64 // bytes
}

// watchPeak starts sampling the heap and resets the resident set's
// high-water mark. The function it returns stops the sampling (its
// goroutine ends before it returns) and gives the peaks; tb's cleanup
// stops it when a failure came first.
func watchPeak(tb testing.TB) func() peakMemory {
	tb.Helper()
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heapNow := func() uint64 {
		rtmetrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	rssNow := func(field string) uint64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				return kb << 10
			}
		}
		return 0
	}
	debug.FreeOSMemory() // what earlier runs left is given back: rss0 is what is live
	rss0 := rssNow("VmRSS")
	resetHWM := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	heap0 := heapNow()
	stop, done := make(chan struct{}), make(chan uint64, 1)
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	tb.Cleanup(end)
	go func() {
		top := heap0
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			top = max(top, heapNow())
			select {
			case <-stop:
				done <- top
				return
			case <-t.C:
			}
		}
	}()
	return func() peakMemory {
		end()
		p := peakMemory{heap: float64(<-done) - float64(heap0)}
		if hwm := rssNow("VmHWM"); resetHWM && hwm > rss0 {
			p.rss = float64(hwm - rss0)
		}
		return p
	}
}

// wait waits until cond holds, waking on every batch of answers the fake
// counted, and every 50 µs once cond may be about to hold: the fake has
// answered online, and the service takes the answer a moment later.
func (fx *scaleFixture) wait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	f := fx.f
	f.flush()
	start := time.Now()
	for !cond() {
		if err := f.srv.Err(); err != nil {
			tb.Fatalf("fake server: %v", err)
		}
		if time.Since(start) > scaleWait {
			tb.Fatalf("timed out waiting for %s (probes %d, live %d, actual %d, retracts %d, status %d)",
				what, f.probes.Load(), f.live.Load(), f.actual.Load(), f.retracts.Load(), f.statusPub.Load())
		}
		if f.online.Load() > 0 {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		select {
		case <-f.progress:
		case <-f.tick.C:
		}
	}
}

// check fails tb unless the service tracks the n connections and the fake
// saw the work the start had to do: a probe per user, and with stale
// items n retracts and n publishes (none with warm ones). The live events
// held during the start go out after online: one per connection with
// stale items (at most the queue's 100 000; the others were dropped), none
// with warm ones, each connection found as the node held it
// (dropUnchangedLive). A change of one connection made after online is
// published after them (the live lane keeps its order): once it is, the
// count is final. It leaves that connection dnd.
func (fx *scaleFixture) check(tb testing.TB, items fakeItems) {
	tb.Helper()
	f, rs, n := fx.f, fx.rs, int64(fx.n)
	if got := rs.metric(tb, "pubpresence_tracked_connections"); got != float64(n) {
		tb.Fatalf("tracked connections at online = %v, want %d", got, n)
	}
	if got := f.probes.Load(); got != n {
		tb.Fatalf("probes = %d, want %d", got, n)
	}
	want := int64(0)
	if items == itemsStale {
		want = n
	}
	if got := f.retracts.Load(); got != want {
		tb.Fatalf("retracts = %d, want %d", got, want)
	}
	if got := f.actual.Load(); got != want {
		tb.Fatalf("actual publishes = %d, want %d", got, want)
	}
	dropped := int64(rs.metric(tb, "pubpresence_live_dropped_total"))
	f.injectPresence(0, f.resources[0], "dnd", -1, 0)
	fx.wait(tb, "the live events held during the start, then the change", func() bool { return f.live.Load()+dropped > want })
	if got := f.live.Load() + dropped; got != want+1 {
		tb.Fatalf("live events published %d + dropped %d, want %d held and 1 change", f.live.Load(), dropped, want)
	}
}

// phases returns how long each step of the start took, as the fake saw
// it: up to the session list written (the nodes set up, the list asked
// and made), from there to the last probe answered (the list read, the
// users probed), from the start to the actual node's items written (the
// fetch, which runs alongside the list and the probes: prefetch.go), and
// from the later of those two to online (the items read, the diff, its
// changes and online answered).
func (fx *scaleFixture) phases() [4]time.Duration {
	start, listed, probed, items := fx.start.UnixNano(), fx.f.listedAt.Load(), fx.f.probedAt.Load(), fx.f.itemsAt.Load()
	online := fx.start.Add(fx.took).UnixNano()
	return [4]time.Duration{
		time.Duration(listed - start),
		time.Duration(probed - listed),
		time.Duration(items - start),
		time.Duration(online - max(probed, items)),
	}
}

// stop stops the service and the fake.
func (fx *scaleFixture) stop(tb testing.TB) {
	tb.Helper()
	if fx.stopped {
		return
	}
	fx.stopped = true
	fx.rs.stop(tb)
	fx.f.close()
}

// BenchmarkScaleResync measures start → online with N users online, the
// actual node warm (the same N items) or cold (N stale items). Run it
// with -benchtime=1x: each op is one start. heap-B/conn is the live heap
// once online and the held live events are out, less the heap before the
// start, over N (an upper bound: the service's fixed share is in it).
// peak-heap-B/conn and peak-rss-B/conn are the start's high-water marks
// over N (peakMemory): what the host needs for a start, the fake's
// answers included.
func BenchmarkScaleResync(b *testing.B) {
	b.Run("conns=0", func(b *testing.B) {
		var took time.Duration
		for range b.N {
			fx := scaleStart(b, 0, itemsWarm)
			took += fx.took
			fx.stop(b)
		}
		b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "ns/start")
	})
	for _, n := range scaleSizes(b) {
		for _, items := range []fakeItems{itemsWarm, itemsStale} {
			name := "conns=" + strconv.Itoa(n) + "/warm"
			if items == itemsStale {
				name = "conns=" + strconv.Itoa(n) + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				var took, cpu time.Duration
				var heap, dropped, peakHeap, peakRSS float64
				var phases [4]time.Duration
				b.StopTimer()
				for range b.N {
					b.StartTimer()
					fx := scaleStart(b, n, items)
					b.StopTimer()
					took += fx.took
					cpu += fx.cpu
					peakHeap += fx.peak.heap / float64(n)
					peakRSS += fx.peak.rss / float64(n)
					for i, d := range fx.phases() {
						phases[i] += d
					}
					fx.check(b, items)
					dropped += fx.rs.metric(b, "pubpresence_live_dropped_total")
					heap += (float64(liveHeap()) - float64(fx.heap0)) / float64(n)
					if path := os.Getenv("PUBPRESENCE_HEAP_PROFILE"); path != "" {
						writeHeapProfile(b, path+".resync."+strings.ReplaceAll(name, "/", "."))
					}
					fx.stop(b)
				}
				per := float64(b.N) * float64(n)
				b.ReportMetric(float64(took.Nanoseconds())/per, "ns/conn")
				b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/conn")
				b.ReportMetric(heap/float64(b.N), "heap-B/conn")
				b.ReportMetric(dropped/float64(b.N), "live-dropped")
				b.ReportMetric(peakHeap/float64(b.N), "peak-heap-B/conn")
				b.ReportMetric(peakRSS/float64(b.N), "peak-rss-B/conn")
				for i, unit := range []string{"list-ns/conn", "probe-ns/conn", "fetch-ns/conn", "diff-ns/conn"} {
					b.ReportMetric(float64(phases[i].Nanoseconds())/per, unit)
				}
			})
		}
	}
}

// BenchmarkWarmStartUserStats is a warm start of 10 000 connections (as
// BenchmarkScaleResync's), the session list given with Prosody's details
// (details) or naming the users only, as ejabberd's does (user-stats): the
// service then asks user-stats once per user. cpu-ns/conn is the
// process's CPU (the service's and the fake's) per connection.
//
//	go test -run='^$' -bench=WarmStartUserStats -benchtime=3x ./service/
func BenchmarkWarmStartUserStats(b *testing.B) {
	const n = 10000
	for _, bare := range []bool{false, true} {
		name := "details"
		if bare {
			name = "user-stats"
		}
		b.Run(name, func(b *testing.B) {
			var took, cpu time.Duration
			b.StopTimer()
			for range b.N {
				b.StartTimer()
				fx := scaleStart(b, n, itemsWarm, func(f *fakeServer) { f.bareList = bare })
				b.StopTimer()
				took += fx.took
				cpu += fx.cpu
				fx.check(b, itemsWarm)
				if got, want := fx.f.userStats.Load(), map[bool]int64{false: 0, true: n}[bare]; got != want {
					b.Fatalf("user-stats asked %d times, want %d", got, want)
				}
				fx.stop(b)
			}
			per := float64(b.N) * n
			b.ReportMetric(float64(took.Nanoseconds())/per, "ns/conn")
			b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/conn")
		})
	}
}

// BenchmarkScaleEvents measures the whole process per presence change
// with N connections tracked, as BenchmarkServiceEvents does with 1000:
// the fake injects b.N changes (at most eventWindow not yet published on
// the live node), each to the next connection of a walk that visits every
// one of the N in a scattered order (a stride coprime with N), and the op
// ends when every live publish and the sentinel's last actual publish are
// answered. The service is started once per N (a warm start) and serves
// every run of that N.
func BenchmarkScaleEvents(b *testing.B) {
	for _, n := range scaleSizes(b) {
		fx := scaleStart(b, n, itemsWarm)
		fx.check(b, itemsWarm)
		f, rs := fx.f, fx.rs
		f.injectPresence(-1, "r", "", -1, 0) // the sentinel: looked up once
		fx.wait(b, "the sentinel", func() bool { return f.sentinel.Load() == 1 })
		stride := 1000003
		for gcd(stride, n) != 1 {
			stride++
		}
		seq := 0 // changes made so far, over every run
		b.Run("conns="+strconv.Itoa(n), func(b *testing.B) {
			const eventWindow = 1024
			outer := f.tb
			f.tb = b // the fake fails the run it serves
			defer func() { f.tb = outer }()
			live0, actual0, sentinel0 := f.live.Load(), f.actual.Load(), f.sentinel.Load()
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				if int64(i)-(f.live.Load()-live0) >= eventWindow {
					fx.wait(b, "room in the window", func() bool { return int64(i)-(f.live.Load()-live0) < eventWindow })
				}
				show := "dnd"
				if (seq/n)%2 == 1 {
					show = "away"
				}
				// Text n+seq differs from the connection's every time.
				f.injectPresence(seq*stride%n, "r", show, n+seq, 0)
				seq++
			}
			f.injectPresence(-1, "r", "xa", seq, 5)
			fx.wait(b, "every publish", func() bool {
				return f.live.Load()-live0 == int64(b.N)+1 && f.sentinel.Load() > sentinel0
			})
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
			b.ReportMetric(float64(f.actual.Load()-actual0-1)/float64(b.N), "actual/event")
		})
		if d := rs.metric(b, "pubpresence_live_dropped_total"); d > float64(max(n-100000, 0)) {
			b.Fatalf("%v live events dropped", d)
		}
		if got := rs.metric(b, "pubpresence_tracked_connections"); got != float64(n+1) {
			b.Fatalf("tracked connections = %v, want %d", got, n+1)
		}
		fx.stop(b)
	}
}

// BenchmarkScaleMemory is BenchmarkMemoryPerConn at each N: heap per
// connection once N new connections are tracked, each looked up with
// user-stats (measureMemory). Run it with -benchtime=1x.
func BenchmarkScaleMemory(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run("conns="+strconv.Itoa(n), func(b *testing.B) {
			var bytesPer, objsPer float64
			for range b.N {
				bp, op := measureMemory(b, n)
				bytesPer += bp
				objsPer += op
			}
			b.ReportMetric(bytesPer/float64(b.N), "B/conn")
			b.ReportMetric(objsPer/float64(b.N), "objects/conn")
		})
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
