#!/usr/bin/env bash
# Removes what scripts/install.sh installed. The database in
# /var/lib/bwtracker is kept unless --purge is given.
#
#   sudo ./scripts/uninstall.sh            # stop, disable, remove binary + unit
#   sudo ./scripts/uninstall.sh --purge    # ... and delete the database
#
# PREFIX and DESTDIR as for install.sh.
set -euo pipefail

purge=0
for arg in "$@"; do
	case "$arg" in
	--purge) purge=1 ;;
	-h | --help)
		sed -n '2,8s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "uninstall.sh: unknown option $arg (only --purge)" >&2
		exit 2
		;;
	esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bin=$DESTDIR$PREFIX/bin/bwtracker
unit=$DESTDIR/etc/systemd/system/bwtracker.service
statedir=$DESTDIR/var/lib/bwtracker

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
	echo "uninstall.sh: must run as root (try: sudo $0 $*)" >&2
	exit 1
fi

systemd=0
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemd=1
	# SIGTERM makes the daemon flush what it counted before it exits.
	systemctl disable --now bwtracker 2>/dev/null || true
fi

rm -f "$unit" "$bin"
echo "removed $unit"
echo "removed $bin"
if [ "$systemd" = 1 ]; then
	systemctl daemon-reload
	systemctl reset-failed bwtracker 2>/dev/null || true
fi

if [ "$purge" = 1 ]; then
	rm -rf "$statedir"
	echo "removed $statedir (database)"
elif [ -d "$statedir" ]; then
	echo "kept $statedir (database); remove it with: $0 --purge"
fi
