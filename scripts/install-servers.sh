#!/usr/bin/env bash
# install-servers.sh installs the XMPP servers the integration tests start
# privately: Prosody (with the SQLite driver and the community modules, for
# mod_privilege), and ejabberd when asked; and when asked, the headless
# browser the page's test drives (integration/page_test.go).
#
#   scripts/install-servers.sh            # prosody + lua-dbi-sqlite3 + prosody-modules
#   scripts/install-servers.sh ejabberd   # the same, plus ejabberd
#   scripts/install-servers.sh chromium   # the same as without, plus chromium + fonts-dejavu-core
#   scripts/install-servers.sh ejabberd chromium   # everything (CI: scripts/test.sh)
#
# Debian/Ubuntu only (apt-get). Idempotent: when everything is installed it
# does nothing and prints nothing. It never leaves a system-wide server
# running: the tests start their own, on free loopback ports.
set -euo pipefail

usage() { echo "usage: $0 [ejabberd] [chromium]" >&2; exit 2; }

want_ejabberd=0
want_chromium=0
for arg in "$@"; do
	case "$arg" in
	ejabberd) want_ejabberd=1 ;;
	chromium) want_chromium=1 ;;
	prosody) ;; # always installed
	*) usage ;;
	esac
done

installed() { # installed PACKAGE: is the Debian package installed?
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
services=()
command -v prosody >/dev/null 2>&1 || missing+=(prosody)
installed lua-dbi-sqlite3 || missing+=(lua-dbi-sqlite3)
# mod_privilege (XEP-0356, privileged presence: testserver.WithPrivilege)
# lands in /usr/lib/prosody/modules/mod_privilege/, which Prosody searches
# without plugin_paths.
installed prosody-modules || missing+=(prosody-modules)
services+=(prosody)
if [ "$want_ejabberd" = 1 ]; then
	command -v ejabberdctl >/dev/null 2>&1 || missing+=(ejabberd)
	services+=(ejabberd)
fi
if [ "$want_chromium" = 1 ]; then
	# The page's test runs /usr/bin/chromium headless (chromedp); the fonts
	# are for its text (the page loads none from the network). No service.
	[ -x /usr/bin/chromium ] || missing+=(chromium)
	installed fonts-dejavu-core || missing+=(fonts-dejavu-core)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-servers: apt-get not found; install these packages by hand: ${missing[*]}" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "install-servers: not root and no sudo; run as root:" >&2
		echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi
as_root() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "$@"; }

echo "install-servers: installing ${missing[*]}"
log=$(mktemp)
policy=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
	if [ "$own_policy" = 1 ]; then as_root rm -f "$policy"; fi
	rm -f "$log"
}
trap cleanup EXIT

# Keep the packages' maintainer scripts from starting the system services
# (invoke-rc.d asks policy-rc.d; 101 means "action forbidden"). An existing
# policy-rc.d is left alone; set -C creates ours only if there is none, so
# the trap removes nothing it did not create.
if [ ! -e "$policy" ] &&
	"${sudo[@]}" sh -c "set -C; printf '#!/bin/sh\nexit 101\n' > '$policy'" 2>/dev/null; then
	own_policy=1
	"${sudo[@]}" chmod 755 "$policy"
fi

run() { # run CMD...: run quietly, show the output only if it fails
	if ! as_root "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "install-servers: failed: $*" >&2
		exit 1
	fi
}
run apt-get update -qq
run apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}"

# In case a service got started anyway (systemd ignores policy-rc.d for
# units it starts itself): stop and disable it again.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	for svc in "${services[@]}"; do
		if systemctl is-active --quiet "$svc" 2>/dev/null || systemctl is-enabled --quiet "$svc" 2>/dev/null; then
			as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
		if systemctl is-active --quiet "$svc" 2>/dev/null; then
			echo "install-servers: warning: the system $svc service is still running" >&2
		fi
	done
fi
echo "install-servers: installed ${missing[*]}"
