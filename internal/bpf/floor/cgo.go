package floor

// Static libbpf, libelf and zlib, as internal/bpf/cgo.go.

// #cgo LDFLAGS: -l:libbpf.a -l:libelf.a -l:libz.a
import "C"
