# bwtracker build. `make` installs what is missing (scripts/deps.sh), compiles
# the BPF object, bundles the web UI and links one static-libbpf binary.
.DELETE_ON_ERROR:
.PHONY: all deps test test-deps test-unit test-cgofree lint soak bench bench-history bench-scale bench-api bench-anomaly vmlinux clean install uninstall ui

GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
CLANG     ?= clang
ARCH      := x86
BPF_SRC   := ebpf/bwtracker.bpf.c
BPF_OBJ   := internal/bpf/bwtracker.bpf.o
# The overhead floor of `make bench` (internal/bpf/floor, imported only by
# the benchmark); built with the main object so `go build ./...` works.
FLOOR_OBJ := internal/bpf/floor/floor.bpf.o
BPF_HDRS  := $(wildcard ebpf/*.h) vmlinux/$(ARCH)/vmlinux.h
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -I vmlinux/$(ARCH) -I ebpf
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
UI_SRC    := $(shell find ui/src -type f 2>/dev/null) ui/package.json ui/package-lock.json $(wildcard ui/*.mjs ui/index.html)
GO_SRC    := $(shell find cmd internal ebpf ui -name '*.go' -not -path '*/node_modules/*' 2>/dev/null) go.mod go.sum

# libbpf, libelf and zlib are linked statically (internal/bpf/cgo.go): ./bwtracker needs only libc.
export CGO_ENABLED := 1
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X github.com/bwtracker/bwtracker/internal/version.Version=$(VERSION)"

all: bwtracker

.deps.stamp: scripts/deps.sh
	./scripts/deps.sh
	@touch $@

deps:
	./scripts/deps.sh

$(BPF_OBJ): $(BPF_SRC) $(BPF_HDRS) .deps.stamp | $(FLOOR_OBJ)
	$(CLANG) $(BPF_CFLAGS) -c $(BPF_SRC) -o $@

$(FLOOR_OBJ): ebpf/floor.bpf.c vmlinux/$(ARCH)/vmlinux.h .deps.stamp
	$(CLANG) $(BPF_CFLAGS) -c ebpf/floor.bpf.c -o $@

ui/dist/index.html: $(UI_SRC) .deps.stamp
	cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build

ui: ui/dist/index.html

bwtracker: $(BPF_OBJ) ui/dist/index.html $(GO_SRC)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/bwtracker

# Test dependencies (chromium, tmux, shellcheck, systemd-analyze, the npm
# schema packages, ...): installed once, so `make test` runs every test.
.test-deps.stamp: scripts/deps.sh deploy/kubernetes/validate/package-lock.json
	./scripts/deps.sh --test
	cd deploy/kubernetes/validate && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test-deps: .test-deps.stamp

# All tests: unit tests (no root) and integration tests that load the real
# BPF programs (they skip loudly when not root). BWTRACKER_REQUIRE_TEST_DEPS
# makes a missing test dependency fail instead of skip (internal/testenv).
test: bwtracker .test-deps.stamp test-cgofree lint
	BWTRACKER_REQUIRE_TEST_DEPS=1 BWTRACKER_BIN=$(CURDIR)/bwtracker $(GO) test -race -count=1 -timeout 30m ./...

# The cgo-free core: these packages vet and pass their unit tests with
# CGO_ENABLED=0, so without libbpf, clang or root. Only internal/bpf (the
# loader) links libbpf; a package here that reaches it breaks this target.
CGOFREE_PKGS := ./internal/api/... ./internal/alerts/... ./internal/store/... ./internal/report/... ./internal/live/... ./internal/bpf/abi/... ./internal/timespec/... ./internal/apiclient/...
test-cgofree:
	CGO_ENABLED=0 $(GO) vet $(CGOFREE_PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 -short $(CGOFREE_PKGS)

# Lint: gofmt, go vet and staticcheck (pinned; fetched through the Go proxy
# on first use, then cached).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: $(BPF_OBJ) ui/dist/index.html
	@fmt=$$(gofmt -l cmd internal ui/*.go deploy); if [ -n "$$fmt" ]; then echo "gofmt -w needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

test-unit: $(BPF_OBJ) ui/dist/index.html
	$(GO) test -race -count=1 -short ./...

# 100 kill -9 cycles at random moments against one database (root): prints
# the loss per kill. `make test` runs 20.
soak: bwtracker
	BWTRACKER_BIN=$(CURDIR)/bwtracker BWT_KILL_CYCLES=100 $(GO) test -count=1 -timeout 60m -run '^TestKill9Cycles$$' -v ./internal/integration/

# Tracker overhead (root): msgs/s with no hook, the floor (ebpf/floor.bpf.c)
# and bwtracker, 64-byte stream and ping-pong, daemon CPU.
bench: bwtracker
	./scripts/bench.sh

# Anomaly detector: precision/recall per sensitivity on synthetic 8-week
# histories with injected anomalies (internal/alerts/bench_anomaly_test.go).
bench-anomaly:
	$(GO) test -run '^$$' -bench BenchmarkAnomalyReplay -benchtime 1x ./internal/alerts/

# 30 days of synthetic history through the real rollup code.
bench-history: bwtracker
	./scripts/bench-history.sh

# Many new remotes per second (root): daemon CPU, bytes lost, DB bytes per
# million samples, report latency on a 30-day high-cardinality file.
bench-scale: bwtracker
	GO=$(GO) ./scripts/bench-scale.sh

# API latency (p50/p99) of /api/current and /api/history.
bench-api: $(BPF_OBJ) ui/dist/index.html
	$(GO) test -run '^$$' -bench . -benchtime=1000x ./internal/api/

# Regenerate the committed vmlinux.h from the running kernel's BTF and
# record kernel and bpftool in vmlinux/$(ARCH)/README.md. Refuses to replace
# a different header (printing what changes) unless FORCE=1.
vmlinux:
	ARCH=$(ARCH) FORCE=$(FORCE) ./scripts/vmlinux.sh

install: bwtracker
	./scripts/install.sh

uninstall:
	./scripts/uninstall.sh

clean:
	rm -f bwtracker $(BPF_OBJ) $(FLOOR_OBJ) .deps.stamp .test-deps.stamp
	find ui/dist -mindepth 1 ! -name .gitkeep -delete 2>/dev/null || true
