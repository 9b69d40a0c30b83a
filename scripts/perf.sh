#!/usr/bin/env bash
# perf.sh runs the whole performance comparison of docs/performance.md and
# prints one table:
#
#   1. in-process Go benchmarks: the hot path (decoded presence → encoded
#      publishes), the whole process per event over loopback, and heap per
#      tracked connection at 10 000 and 100 000 connections (medians);
#   2. against a private Prosody and a private ejabberd (started and stopped
#      by the test, 127.0.0.1 only), each a ratio taken in one run:
#      throughput vs a raw publisher, latency vs the server's own presence
#      delivery to a contact, resync warm and cold (vs a raw publisher making
#      the same requests), a restart during a flood; the same against a
#      two-node ejabberd cluster with the CPU of each process
#      (TestIntegrationClusterPerformance); and a storm of 10 000 logins on
#      each server, where no request may time out (TestIntegrationLoginStorm);
#      and the server's cost of reading a node of 1000 and 10 000 items, on
#      Prosody with each garbage collector (TestIntegrationFetchCost);
#   3. the HTTP face: 1000 event streams at 1000 changes a second (CPU per
#      change per stream, heap per stream, delivery delay p50/p99), and the
#      whole process per event with 0, 100 and 1000 streams following it;
#   4. scale, in process against the fake server: resync per connection
#      (warm and cold), heap per connection and the whole process per event
#      with N connections tracked, for N in SCALE_SIZES; the table and the
#      plot (scale.svg in LOGDIR) of docs/performance.md, "Scale".
#
#   SIZES=1000,10000 scripts/perf.sh     resync sizes (default 1000,10000)
#   FLOW_SIZES=10000                     throughput rows with that many users online, both
#                                        tracking modes (default 10000; "" for none)
#   CHANGES=20000                        changes of the throughput run
#   ROUNDS=3                             rounds of warm and cold starts per resync row, the
#                                        medians printed (default 3 up to 1000 users, 1 above)
#   COUNT=5                              runs of each Go benchmark
#   LOGDIR=/tmp/perf                     where the raw outputs stay (default a new temp dir)
#   SCALE_SIZES=1000,10000,100000        connections of the scale rows; add 1000000 for
#                                        the last point of the curve (about 40 min more, 6 GiB)
#   SCALE_COUNT=3                        runs of each scale benchmark
#   PROSODY_GC=generational              the resync and throughput rows' Prosody with Lua's
#                                        generational garbage collector (docs/prosody.md)
#
# Nothing here asserts speed; the tests assert that nothing is lost.
set -uo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-1000,10000}
FLOW_SIZES=${FLOW_SIZES-10000}
CHANGES=${CHANGES:-20000}
COUNT=${COUNT:-5}
SCALE_SIZES=${SCALE_SIZES:-1000,10000,100000}
SCALE_COUNT=${SCALE_COUNT:-3}
# The raw outputs (benchmarks, the test's log) stay in LOGDIR.
out=${LOGDIR:-$(mktemp -d)}
mkdir -p "$out"
echo "raw outputs in $out" >&2

scripts/install-servers.sh ejabberd >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }

echo "==> Go benchmarks (count $COUNT)" >&2
go test -run '^$' -bench 'HotPath|ServiceEvents$' -benchmem -count "$COUNT" ./service/ >"$out/bench.txt" 2>&1 ||
	{ cat "$out/bench.txt"; exit 1; }
go test -run '^$' -bench 'PresenceToPublish' -benchmem -count "$COUNT" ./nodes/ >>"$out/bench.txt" 2>&1 ||
	{ cat "$out/bench.txt"; exit 1; }
go test -run '^$' -bench 'MemoryPerConn' -benchtime 1x -count 3 -timeout 30m ./service/ >>"$out/bench.txt" 2>&1 ||
	{ cat "$out/bench.txt"; exit 1; }

echo "==> the HTTP face" >&2
go test -run '^$' -bench 'ServiceEventsHTTP' -benchmem -count "$COUNT" ./service/ >"$out/http.txt" 2>&1 ||
	{ cat "$out/http.txt"; exit 1; }
go test -run '^$' -bench 'EventStreams' -benchtime 1x -count 3 ./web/ >>"$out/http.txt" 2>&1 ||
	{ cat "$out/http.txt"; exit 1; }

echo "==> scale (connections $SCALE_SIZES, count $SCALE_COUNT)" >&2
PUBPRESENCE_SCALE_SIZES="$SCALE_SIZES" go test -run '^$' -bench 'Scale(Resync|Memory)' -benchtime 1x -count "$SCALE_COUNT" \
	-timeout 4h ./service/ >"$out/scale.txt" 2>&1 || { cat "$out/scale.txt"; exit 1; }
PUBPRESENCE_SCALE_SIZES="$SCALE_SIZES" go test -run '^$' -bench 'ScaleEvents' -benchmem -count "$SCALE_COUNT" \
	-timeout 4h ./service/ >>"$out/scale.txt" 2>&1 || { cat "$out/scale.txt"; exit 1; }
go run ./scripts/scaleplot -svg "$out/scale.svg" "$out/scale.txt" >"$out/scale.md" || exit 1

echo "==> against Prosody and ejabberd (sizes $SIZES, $CHANGES changes)" >&2
PUBPRESENCE_REQUIRE_SERVERS=1 PUBPRESENCE_PERF=1 PUBPRESENCE_PERF_SIZES="$SIZES" PUBPRESENCE_PERF_CHANGES="$CHANGES" \
	PUBPRESENCE_PERF_FLOW_SIZES="$FLOW_SIZES" PUBPRESENCE_PERF_ROUNDS="${ROUNDS:-}" PUBPRESENCE_PERF_PROSODY_GC="${PROSODY_GC:-}" \
	go test -count=1 -tags integration -run 'TestIntegrationPerformance|TestIntegrationClusterPerformance|TestIntegrationLoginStorm|TestIntegrationFetchCost' -v -timeout 240m ./integration/ >"$out/perf.txt" 2>&1
rc=$?

# median UNIT: the median of the values preceding UNIT on each benchmark
# line, per benchmark name.
median() {
	awk -v unit="$1" '
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			for (i = 3; i <= NF; i++) if ($i == unit) { v[name] = v[name] " " $(i-1) }
		}
		END {
			for (n in v) {
				k = split(substr(v[n], 2), a, " ")
				for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
				m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
				printf "%s %s\n", n, m
			}
		}' "${2:-$out/bench.txt}" | sort
}

echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
	"$(go version | cut -d' ' -f3); prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null), ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null)"
echo
echo "Scale, in process (medians of $SCALE_COUNT; the plot: $out/scale.svg):"
echo
cat "$out/scale.md"
echo
echo "| server | measure | pubpresence | versus | ratio | goal |"
echo "|---|---|---|---|---|---|"
median ns/op | grep -v MemoryPerConn | while read -r n v; do
	printf '| – | %s, per event | %.2f µs | | | ≤ 10 µs |\n' "$n" "$(echo "$v / 1000" | bc -l)"
done
median allocs/op | grep -v MemoryPerConn | while read -r n v; do printf '| – | %s, allocations per event | %s | | | few |\n' "$n" "$v"; done
median B/conn | while read -r n v; do printf '| – | %s heap per connection | %.0f B | | | ≤ 1024 B |\n' "$n" "$v"; done
median ns/op "$out/http.txt" | while read -r n v; do
	printf '| – | %s, whole process per event | %.2f µs | | | as without streams |\n' "$n" "$(echo "$v / 1000" | bc -l)"
done
for unit in cpu-ns/change/stream heap-B/stream p50-ms p99-ms behind; do
	median "$unit" "$out/http.txt" | while read -r n v; do
		case $unit in
		p99-ms) goal="< 50 ms" ;; heap-B/stream) goal="< 65536 B" ;; behind) goal="0" ;; *) goal="" ;;
		esac
		printf '| – | %s, 1000 streams × 1000 changes/s, %s | %s | | | %s |\n' "$n" "$unit" "$v" "$goal"
	done
done
grep -o 'PERF | .*' "$out/perf.txt" | sed 's/^PERF | /| /'

if [ "$rc" -ne 0 ]; then
	echo
	echo "the comparison FAILED (exit $rc):"
	grep -E -- '--- FAIL|_test.go:[0-9]+:' "$out/perf.txt" | grep -v PERF | tail -40
	exit "$rc"
fi
