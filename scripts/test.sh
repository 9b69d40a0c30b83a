#!/usr/bin/env bash
# test.sh runs every check and test of the project, the way CI does:
#
#   1. installs the XMPP servers the integration tests need, and Chromium
#      for the page's test (scripts/install-servers.sh)
#   2. gofmt, go vet (with and without the integration tag), staticcheck
#   3. unit tests: go test -race ./...; every fuzz target for a few seconds
#      (scripts/fuzz.sh, corpus in each package's testdata/fuzz)
#   4. integration tests, each test body against a private Prosody and a
#      private ejabberd (started and stopped by the tests, on 127.0.0.1):
#      PUBPRESENCE_REQUIRE_SERVERS=1 go test -race -tags integration ./...
#
# Every step runs even when an earlier one failed; the script prints each
# step's wall time and exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# staticcheck 2026.2.2; its module versions are v0.x (v0.6.1 = 2025.1.1, too old for Go 1.26).
STATICCHECK_VERSION=v0.8.2

failed=()

# step NAME CMD...: run CMD, print its wall time, remember a failure.
step() {
	local name=$1 start rc us
	shift
	echo "==> $name"
	start=${EPOCHREALTIME/./}
	"$@"
	rc=$?
	us=$((${EPOCHREALTIME/./} - start))
	if [ "$rc" -eq 0 ]; then
		printf '<== %s: ok (%d.%01ds)\n\n' "$name" $((us / 1000000)) $((us / 100000 % 10))
	else
		printf '<== %s: FAILED, exit %d (%d.%01ds)\n\n' "$name" "$rc" $((us / 1000000)) $((us / 100000 % 10))
		failed+=("$name")
	fi
}

gofmt_check() {
	local out
	out=$(gofmt -l . 2>&1) || { echo "$out"; return 1; }
	if [ -n "$out" ]; then
		echo "gofmt would change these files:"
		echo "$out"
		return 1
	fi
}

staticcheck() {
	local sc=(go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION")
	if ! "${sc[@]}" -version >/dev/null 2>&1; then
		echo "staticcheck@$STATICCHECK_VERSION does not build here (module proxy unreachable?); skipped"
		return 0
	fi
	"${sc[@]}" ./... && "${sc[@]}" -tags integration ./...
}

step "install servers and chromium" scripts/install-servers.sh ejabberd chromium
step "gofmt" gofmt_check
step "go vet" go vet ./...
step "go vet (integration)" go vet -tags integration ./...
step "staticcheck $STATICCHECK_VERSION" staticcheck
step "unit tests" go test -race -count=1 ./...
step "fuzz (each target ${FUZZTIME:-5s})" scripts/fuzz.sh
step "integration tests" env PUBPRESENCE_REQUIRE_SERVERS=1 \
	go test -race -count=1 -tags integration -timeout 20m ./...

if [ "${#failed[@]}" -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "all checks passed"
