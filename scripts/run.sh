#!/usr/bin/env bash
# run.sh runs pubpresence.
#
#   scripts/run.sh CONFIG   # against your own server: pubpresence run --config CONFIG
#   scripts/run.sh          # against a private Prosody on 127.0.0.1, to try it out
#   SERVER=ejabberd scripts/run.sh   # the same with a private ejabberd
#
# It builds the programs into .run/bin first and runs them from there:
# `go run` would exit with status 1 after a Ctrl-C even when the program
# stopped cleanly, and would leave the program running if it alone got a
# SIGTERM.
#
# Without CONFIG (nor PUBPRESENCE_CONFIG) it installs the server when missing
# (scripts/install-servers.sh), starts the dev server (what
# `go run ./integration/cmd/devserver -dir .run -server $SERVER` runs; its output says which
# users and ports to use) in the background, waits until it is ready, then
# runs pubpresence with .run/pubpresence.toml: metrics and health on
# http://127.0.0.1:9273, and the HTTP API and the "who is online" page at
# http://127.0.0.1:9273/ with the token kept in .run/tokens (made on the
# first run; the dev server prints it). Ctrl-C (or SIGINT/SIGTERM to this script) stops
# pubpresence, then the server. The server's data stays in .run/ for the
# next run.
#
# Environment:
#   PUBPRESENCE_CONFIG   the config file, as the CONFIG argument (the argument wins)
#   SERVER               the dev server: prosody (the default) or ejabberd
#   DEV_C2S_PORT         the dev server's client port (default 15222)
#   DEV_COMPONENT_PORT   the dev server's component port (default 15347)
set -uo pipefail

usage() { echo "usage: $0 [CONFIG]" >&2; exit 2; }
[ "$#" -le 1 ] || usage
case "${1:-}" in -*) usage ;; esac
config=${1:-${PUBPRESENCE_CONFIG:-}}
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
dir=.run # relative to $root
bin=$dir/bin

# --- Against the operator's own server. ---
if [ -n "$config" ]; then
	case "$config" in /*) ;; *) config=$PWD/$config ;; esac
	if [ ! -r "$config" ]; then
		echo "run: cannot read config $config" >&2
		exit 2
	fi
	cd "$root" || exit 1
	go build -o "$bin/" ./cmd/pubpresence || exit 1
	exec "$bin/pubpresence" run --config "$config"
fi

# --- Against a private dev server. ---
server=${SERVER:-prosody}
case "$server" in
prosody) install=() ;;
ejabberd) install=(ejabberd) ;;
*)
	echo "run: SERVER=$server: unknown dev server (want prosody or ejabberd)" >&2
	exit 2
	;;
esac

cd "$root" || exit 1
c2s_port=${DEV_C2S_PORT:-15222}
component_port=${DEV_COMPONENT_PORT:-15347}
ready_timeout=60 # seconds for the dev server to be ready, once built
stop_timeout=20  # seconds for each process to stop after SIGINT

scripts/install-servers.sh "${install[@]}" || exit 1
go build -o "$bin/" ./cmd/pubpresence ./integration/cmd/devserver || exit 1

mkdir -p "$dir" || exit 1
rm -f "$dir/pubpresence.toml" # the dev server writes it again once it is ready

devserver_pid=
service_pid=

# stop_group PID NAME: stop the process group that PID leads with SIGINT,
# wait for PID, at most stop_timeout seconds, then SIGKILL the group. The
# dev server stops its server (SIGTERM, at most 10 s) before it exits; if it
# is killed, the server gets SIGKILL from the kernel (parent-death signal).
stop_group() {
	local pid=$1 name=$2 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
	kill -INT -- "-$pid" 2>/dev/null
	for ((i = 0; i < stop_timeout * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "run: $name still running ${stop_timeout}s after SIGINT; killing it" >&2
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

cleanup() {
	trap '' INT TERM
	if [ -n "$service_pid" ]; then stop_group "$service_pid" pubpresence; fi
	if [ -n "$devserver_pid" ]; then stop_group "$devserver_pid" "the dev server"; fi
}
trap cleanup EXIT

# Until pubpresence runs, a signal ends the script (and cleanup stops the
# dev server); then it is passed on to pubpresence, which stops cleanly.
on_signal() { # on_signal NAME STATUS
	if [ -n "$service_pid" ]; then
		kill -"$1" -- "-$service_pid" 2>/dev/null
	else
		echo "run: interrupted (SIG$1)" >&2
		exit "$2"
	fi
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# Each program gets a process group of its own (setsid: in the background
# child, which leads no group, it creates the group in place, so $! is its
# id). A Ctrl-C reaches it only through the traps above, once.
setsid "$bin/devserver" -dir "$dir" -server "$server" -c2s "$c2s_port" -component "$component_port" &
devserver_pid=$!

deadline=$((SECONDS + ready_timeout))
until [ -s "$dir/pubpresence.toml" ] && (exec 3<>"/dev/tcp/127.0.0.1/$c2s_port") 2>/dev/null; do
	if ! kill -0 "$devserver_pid" 2>/dev/null; then
		wait "$devserver_pid"
		echo "run: the dev server exited (status $?); see its messages above" >&2
		devserver_pid=
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "run: the dev server is not ready after ${ready_timeout}s" >&2
		exit 1
	fi
	sleep 0.2
done

setsid "$bin/pubpresence" run --config "$dir/pubpresence.toml" &
service_pid=$!
# wait returns early (status > 128) when a trapped signal arrives: wait
# again while pubpresence runs. If it exited meanwhile, a last wait gets its
# own status (127: it was collected already).
while :; do
	wait "$service_pid"
	rc=$?
	[ "$rc" -gt 128 ] && kill -0 "$service_pid" 2>/dev/null && continue
	break
done
if [ "$rc" -gt 128 ]; then
	wait "$service_pid" 2>/dev/null
	last=$?
	[ "$last" -ne 127 ] && rc=$last
fi
service_pid=
if [ "$rc" -ne 0 ]; then
	echo "run: pubpresence exited with status $rc" >&2
fi
exit "$rc"
