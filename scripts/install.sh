#!/usr/bin/env bash
# Installs bwtracker as a systemd service: the binary, the unit and the
# database directory. Run by `make install` after `make`.
#
#   sudo ./scripts/install.sh            # install, do not start
#   sudo ./scripts/install.sh --start    # install, then systemctl enable --now
#
# Environment:
#   PREFIX   where the binary goes: $PREFIX/bin/bwtracker (default /usr/local)
#   DESTDIR  stage into this root instead of / (packaging, tests); no
#            systemctl calls then and no root needed
#   BWTRACKER_BIN  the binary to install (default ./bwtracker)
set -euo pipefail

usage() {
	sed -n '2,13s/^# \{0,1\}//p' "$0"
	echo "Options: --start (enable and start now), --no-start (default), -h"
}

start=0
for arg in "$@"; do
	case "$arg" in
	--start) start=1 ;;
	--no-start) start=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "install.sh: unknown option $arg" >&2
		usage >&2
		exit 2
		;;
	esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bin_src=${BWTRACKER_BIN:-$here/bwtracker}
unit_src=$here/deploy/systemd/bwtracker.service
bindir=$PREFIX/bin
unitdir=/etc/systemd/system
statedir=/var/lib/bwtracker

if [ ! -x "$bin_src" ]; then
	echo "install.sh: $bin_src not found or not executable: build it first with \`make\`" >&2
	exit 1
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: must run as root (try: sudo $0 $*), or set DESTDIR to stage the files" >&2
	exit 1
fi

install -d -m 0755 "$DESTDIR$bindir" "$DESTDIR$unitdir"
install -m 0755 "$bin_src" "$DESTDIR$bindir/bwtracker"
# The unit names /usr/local/bin/bwtracker; follow PREFIX.
sed "s|/usr/local/bin/bwtracker|$bindir/bwtracker|g" "$unit_src" >"$DESTDIR$unitdir/bwtracker.service.tmp"
chmod 0644 "$DESTDIR$unitdir/bwtracker.service.tmp"
mv -f "$DESTDIR$unitdir/bwtracker.service.tmp" "$DESTDIR$unitdir/bwtracker.service"
# The database holds every process's traffic: root only. systemd's
# StateDirectory= would create it too; do it here so `bwtracker report` as
# root works before the first start.
install -d -m 0700 "$DESTDIR$statedir"
chmod 0700 "$DESTDIR$statedir"

echo "installed $DESTDIR$bindir/bwtracker"
echo "installed $DESTDIR$unitdir/bwtracker.service"
echo "database directory $DESTDIR$statedir (mode 0700)"

if [ -n "$DESTDIR" ]; then
	exit 0
fi
if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
	echo "systemd is not running here: start the daemon yourself with"
	echo "  $bindir/bwtracker run --db $statedir/bwtracker.db"
	exit 0
fi
systemctl daemon-reload
if [ "$start" = 1 ]; then
	systemctl enable --now bwtracker
	systemctl --no-pager --lines=5 status bwtracker || true
else
	echo "enable and start it with:"
	echo "  systemctl enable --now bwtracker"
fi
echo "then: bwtracker report --db $statedir/bwtracker.db   (as root)"
