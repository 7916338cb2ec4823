package bpf

// Link libbpf (>= 1.4, from bookworm-backports), libelf and zlib statically,
// so ./bwtracker needs only libc and plain `go build`/`go test` work without
// extra environment.

// #cgo LDFLAGS: -l:libbpf.a -l:libelf.a -l:libz.a
import "C"
