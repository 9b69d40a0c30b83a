#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, one at a time, for a short
# bounded time, the way CI does:
#
#   scripts/fuzz.sh            every target
#   scripts/fuzz.sh REGEXP     the targets whose "<package dir>/<FuzzName>" matches
#
#   FUZZTIME       -fuzztime of each target (default 5s; "1000x" counts execs)
#   FUZZ_PARALLEL  fuzzing workers per target (default 2)
#
# Each target starts from its f.Add seeds and its corpus in
# <pkg>/testdata/fuzz/<FuzzName>/. The new inputs Go finds interesting go to
# the build cache ($(go env GOCACHE)/fuzz), never to testdata, so a passing
# run leaves the tree as it was (checked with git status when there is a
# work tree). An input that fails is written by Go to
# <pkg>/testdata/fuzz/<FuzzName>/<hash>; the script prints its path. Fix the
# bug and keep the file: it is then a regression seed.
#
# The script prints a line per target with its execs (the last "execs: N"
# Go reports) and a table at the end; it exits non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-5s}
parallel=${FUZZ_PARALLEL:-2}
filter=${1:-}

# seconds prints the time since the EPOCHREALTIME value $1 as "12.3s".
seconds() {
	local us=$((${EPOCHREALTIME/./} - ${1/./}))
	printf '%d.%01ds' $((us / 1000000)) $((us / 100000 % 10))
}

# fuzz_status lists the changes git sees under testdata/fuzz ("" without git).
fuzz_status() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git status --porcelain --untracked-files=all -- ':(glob)**/testdata/fuzz/**' 2>/dev/null || true
	fi
}

total_start=$EPOCHREALTIME
before=$(fuzz_status)

# The packages whose test files declare a fuzz target; go test -list then
# names the targets that really build (build tags, typos in the signature).
mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . |
	xargs -r -n1 dirname | sed 's|^\./||' | sort -u)
targets=() # "<dir> <FuzzName>"
for dir in "${dirs[@]}"; do
	if ! list=$(go test -list '^Fuzz' "./$dir" 2>&1); then
		echo "$list"
		echo "fuzz.sh: cannot list the fuzz targets of ./$dir" >&2
		exit 1
	fi
	while read -r name; do
		if [[ $name == Fuzz* ]] && [[ -z $filter || "$dir/$name" =~ $filter ]]; then
			targets+=("$dir $name")
		fi
	done <<<"$list"
done
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz target${filter:+ matches $filter}" >&2
	exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, -fuzztime=$fuzztime -parallel=$parallel each"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rows=()
failed=0
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	start=$EPOCHREALTIME
	status=ok
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel="$parallel" "./$dir" >"$log" 2>&1 || status=FAIL
	# Go 1.26's fuzz coordinator can fail a target with a bare "context
	# deadline exceeded" when -fuzztime ends while a worker is busy
	# (go.dev/issue/75804, fixed in Go 1.27): no input fails, none is
	# written. That, and only that, is run once more.
	if [ "$status" = FAIL ] && grep -qx '    context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written|failure while testing seed corpus|panic:|_test\.go:[0-9]+:' "$log"; then
		echo "$dir $name: the fuzz coordinator's deadline race (go.dev/issue/75804); running it once more"
		status=ok
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel="$parallel" "./$dir" >"$log" 2>&1 || status=FAIL
	fi
	took=$(seconds "$start")
	execs=$(grep -oE '^fuzz: elapsed: [^,]+, execs: [0-9]+' "$log" | tail -n 1 | sed -E 's/.*execs: //' || true)
	execs=${execs:--}
	printf '%-4s %-14s %-26s execs %10s  %s\n' "$status" "$dir" "$name" "$execs" "$took"
	rows+=("$(printf '%-4s %-14s %-26s %10s %8s' "$status" "$dir" "$name" "$execs" "$took")")
	if [ "$status" = FAIL ]; then
		failed=$((failed + 1))
		echo "---- output of $dir $name (last 40 lines):"
		tail -n 40 "$log"
		# A new failing input, or a seed of the corpus that fails.
		input=$(grep -oE 'Failing input written to [^ ]+' "$log" | tail -n 1 | sed 's/^Failing input written to //' || true)
		if [ -z "$input" ]; then
			seed=$(grep -oE 'failure while testing seed corpus entry: [^ ]+' "$log" | tail -n 1 | sed 's/.*entry: //' || true)
			if [ -n "$seed" ] && [ -f "$dir/testdata/fuzz/$seed" ]; then
				input=testdata/fuzz/$seed
			elif [ -n "$seed" ]; then
				echo "failing input: the f.Add seed $seed of $dir"
			fi
		fi
		if [ -n "$input" ]; then
			echo "failing input: $dir/$input"
			echo "re-run: go test -run='^${name}\$/^${input##*/}\$' ./$dir"
		fi
		echo "----"
	fi
done

after=$(fuzz_status)
echo
printf '%-4s %-14s %-26s %10s %8s\n' status package target execs time
printf '%s\n' "${rows[@]}"
echo "total: ${#targets[@]} targets, $failed failed, $(seconds "$total_start")"
if [ "$before" != "$after" ] && [ "$failed" -eq 0 ]; then
	echo "fuzz.sh: the run changed testdata/fuzz although every target passed:" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	exit 1
fi
[ "$failed" -eq 0 ]
