#!/bin/sh
# make vmlinux: regenerate vmlinux/$ARCH/vmlinux.h from the running kernel's
# BTF, and record which kernel and bpftool made it in vmlinux/$ARCH/README.md.
# It refuses to replace the committed header with a different one unless
# FORCE=1: it prints what would change (kernel, size, type counts, type
# names added and removed) first.
set -eu
ARCH=${ARCH:-x86}
DIR=vmlinux/$ARCH
HDR=$DIR/vmlinux.h
README=$DIR/README.md
BTF=${BTF:-/sys/kernel/btf/vmlinux}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ ! -r "$BTF" ]; then
	echo "make vmlinux: $BTF is not readable: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y) or you are not root" >&2
	exit 1
fi
command -v bpftool >/dev/null || { echo "make vmlinux: bpftool not found: apt-get install bpftool (or run scripts/deps.sh)" >&2; exit 1; }

bpftool btf dump file "$BTF" format c > "$TMP/vmlinux.h"
kernel=$(uname -r)
machine=$(uname -m)
bpftool_v=$(bpftool version 2>/dev/null | head -1 | sed 's/^bpftool //')
libbpf_v=$(bpftool version 2>/dev/null | sed -n 's/^using libbpf //p')

# Type definitions: "struct x {", "union x {", "enum x {", "typedef ... x;".
types() {
	sed -n -e 's/^\(struct\|union\|enum\) \([A-Za-z0-9_]*\) {$/\1 \2/p' \
		-e 's/^typedef .*[ *(]\([A-Za-z0-9_]*\)\(\[[0-9]*\]\)*;$/typedef \1/p' \
		-e 's/^typedef .*(\*\([A-Za-z0-9_]*\))(.*);$/typedef \1/p' "$1" | sort -u
}
summary() { # file -> "N bytes, S structs, U unions, E enums, T typedefs"
	types "$1" > "$TMP/t"
	printf '%s bytes, %s structs, %s unions, %s enums, %s typedefs' "$(wc -c < "$1" | tr -d ' ')" \
		"$(grep -c '^struct ' "$TMP/t" || true)" "$(grep -c '^union ' "$TMP/t" || true)" \
		"$(grep -c '^enum ' "$TMP/t" || true)" "$(grep -c '^typedef ' "$TMP/t" || true)"
}

new_sum=$(summary "$TMP/vmlinux.h")
if [ -f "$HDR" ]; then
	if cmp -s "$HDR" "$TMP/vmlinux.h"; then
		echo "make vmlinux: $HDR is already what kernel $kernel gives ($new_sum)"
		exit 0
	fi
	old_kernel=$(sed -n 's/^- kernel: `\([^`]*\)`.*/\1/p' "$README" 2>/dev/null | head -1)
	old_sum=$(summary "$HDR")
	types "$HDR" > "$TMP/old.types"
	types "$TMP/vmlinux.h" > "$TMP/new.types"
	added=$(comm -13 "$TMP/old.types" "$TMP/new.types" | wc -l | tr -d ' ')
	removed=$(comm -23 "$TMP/old.types" "$TMP/new.types" | wc -l | tr -d ' ')
	echo "make vmlinux: $HDR would change:"
	echo "  kernel   ${old_kernel:-unknown} -> $kernel"
	echo "  was      $old_sum"
	echo "  becomes  $new_sum"
	echo "  types    $added added, $removed removed; $(diff "$HDR" "$TMP/vmlinux.h" | grep -c '^[<>]' || true) lines differ"
	comm -13 "$TMP/old.types" "$TMP/new.types" | head -10 | sed 's/^/    + /'
	comm -23 "$TMP/old.types" "$TMP/new.types" | head -10 | sed 's/^/    - /'
	if [ "${FORCE:-0}" != 1 ]; then
		if [ -n "$old_kernel" ] && [ "$old_kernel" != "$kernel" ]; then
			echo "make vmlinux: refusing to replace the header made on kernel $old_kernel with one from $kernel: rerun with FORCE=1 if you mean it" >&2
		else
			echo "make vmlinux: refusing to replace the committed header: rerun with FORCE=1 if you mean it" >&2
		fi
		exit 1
	fi
fi

mv "$TMP/vmlinux.h" "$HDR"
# Rewrite the provenance block of the README (between the markers).
{
	sed '/^<!-- provenance -->$/,$d' "$README" 2>/dev/null || true
	echo '<!-- provenance -->'
	echo "- kernel: \`$kernel\` ($machine), BTF from $BTF"
	echo "- bpftool: \`$bpftool_v\` (libbpf $libbpf_v)"
	echo "- header: $new_sum"
	echo "- generated: $(date -u +%Y-%m-%d) by \`make vmlinux\`"
} > "$TMP/README.md"
mv "$TMP/README.md" "$README"
echo "make vmlinux: wrote $HDR from kernel $kernel ($new_sum)"
