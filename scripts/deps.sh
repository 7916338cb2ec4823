#!/usr/bin/env bash
# Installs what bwtracker needs to build on Debian 12 (bookworm), only what is
# missing. Called by `make deps` (and so by `make`) and by .ci/run.
#   - clang/llvm to compile ebpf/*.bpf.c, bpftool for `make vmlinux`
#   - libbpf-dev >= 1.4 from bookworm-backports (libbpfgo v0.7.0-libbpf-1.4
#     does not build against bookworm's own 1.1.2), libelf-dev, zlib1g-dev for
#     the static link
#   - nodejs/npm for the dashboard bundle (preinstalled on most images)
# `deps.sh --test` (or BWTRACKER_WITH_TEST_DEPS=1) also installs what the
# tests use (chromium for the browser tests, tmux, iproute2, shellcheck,
# systemd-analyze, prometheus with promtool, prometheus-alertmanager, ...):
# `make test` calls it that way, so a fresh machine
# runs every test instead of skipping some.
set -euo pipefail
[ "${1:-}" = "--test" ] && BWTRACKER_WITH_TEST_DEPS=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "deps: not root and no sudo: install the packages listed in scripts/deps.sh by hand" >&2
		exit 1
	fi
fi

# Go is not installed from Debian (bookworm's golang is 1.19; go.mod needs
# the version it names). Say so clearly instead of failing later.
gobin=$(command -v go || true)
[ -z "$gobin" ] && [ -x /usr/local/go/bin/go ] && gobin=/usr/local/go/bin/go
want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$(dirname "$0")/../go.mod")
if [ -z "$gobin" ]; then
	echo "deps: Go $want or newer is needed (https://go.dev/dl/, usually unpacked to /usr/local/go); add /usr/local/go/bin to PATH" >&2
	exit 1
fi
have=$("$gobin" env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
	echo "deps: Go $have is older than the $want that go.mod needs: install a newer Go (https://go.dev/dl/)" >&2
	exit 1
fi

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in clang llvm libelf-dev zlib1g-dev pkg-config make bpftool; do
	have_pkg "$p" || need+=("$p")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${BWTRACKER_WITH_TEST_DEPS:-0}" = 1 ]; then
	for p in chromium iproute2 tmux iputils-ping util-linux shellcheck systemd prometheus prometheus-alertmanager libcap2-bin; do have_pkg "$p" || need+=("$p"); done
fi

# libbpf-dev must be >= 1.4 (backports).
libbpf_ok=0
if have_pkg libbpf-dev; then
	v=$(dpkg-query -W -f='${Version}' libbpf-dev)
	if dpkg --compare-versions "$v" ge "1:1.4"; then libbpf_ok=1; fi
fi

if [ ${#need[@]} -eq 0 ] && [ $libbpf_ok = 1 ]; then
	exit 0
fi

echo "deps: installing ${need[*]} $([ $libbpf_ok = 1 ] || echo 'libbpf-dev (bookworm-backports)')"
if [ $libbpf_ok = 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
	$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ $libbpf_ok = 0 ]; then
	$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports libbpf-dev libbpf1
fi
