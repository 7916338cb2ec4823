package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Dimension names accepted by Query.By. Each maps to the columns it groups by.
const (
	DimProcess  = "process"
	DimRemote   = "remote"
	DimProtocol = "protocol"
	DimExe      = "exe"  // executable path
	DimUser     = "user" // uid (the report layer names it)
	// DimService and DimContainer name the process's cgroup (cgroups table):
	// the systemd unit, and "runtime:shortid" of a container.
	DimService   = "service"
	DimContainer = "container"
	// DimPort is the remote port. Rollup rows keep it when every sample of
	// the row had the same port and say 0 when they mixed ports (or were
	// folded): 0 means none, mixed or folded. DimNetNS is the process's
	// network namespace (inode number), likewise 0 when a rollup row mixed
	// namespaces; 0 in rows written before schema 3.
	DimPort  = "port"
	DimNetNS = "netns"
	// DimNamespace, DimPod and DimWorkload are the Kubernetes names of the
	// cgroup's pod (internal/k8s): namespace, pod name, and the
	// controller as "kind/name" ("deployment/web"); "" outside pods.
	DimNamespace = "namespace"
	DimPod       = "pod"
	DimWorkload  = "workload"
	// DimDomain is the registrable domain of the remote's name (names.go).
	DimDomain = "domain"
	// DimApp is the process's app (processes.app: internal/procinfo's app
	// rule); DimComm its kernel name; DimCgroup its cgroup v2 path
	// (cgroups.path, relative to the cgroup2 mount, e.g.
	// "/lxc.payload.web" or "/system.slice/nginx.service"); DimScope the
	// remote's locality (endpoints.scope: internal/netscope).
	DimApp    = "app"
	DimComm   = "comm"
	DimCgroup = "cgroup"
	DimScope  = "scope"
)

// Dimensions lists the valid --by values, sorted.
func Dimensions() []string {
	out := make([]string, 0, len(dimensions))
	for k := range dimensions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateDims checks a --by list and returns it de-duplicated, in a fixed
// order (process, remote, protocol, ...).
func ValidateDims(by []string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range by {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "" {
			continue
		}
		if _, ok := dimensions[d]; !ok {
			return nil, fmt.Errorf("unknown dimension %q: valid are %s", d, strings.Join(Dimensions(), ", "))
		}
		seen[d] = true
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no dimension given: valid are %s", strings.Join(Dimensions(), ", "))
	}
	var out []string
	for _, d := range dimOrder {
		if seen[d] {
			out = append(out, d)
		}
	}
	return out, nil
}

var dimOrder = []string{DimApp, DimProcess, DimComm, DimExe, DimUser, DimService, DimContainer, DimNamespace, DimPod, DimWorkload, DimCgroup, DimDomain, DimRemote, DimPort, DimProtocol, DimNetNS, DimScope}

// Query selects a time window and a grouping.
type Query struct {
	Since time.Time // inclusive; zero = beginning
	Until time.Time // exclusive; zero = now and later
	By    []string  // validated dimensions (ValidateDims)
	PID   uint32    // 0 = any
	Comm  string    // "" = any; exact match
	Top   int       // 0 = no limit
	// Service and Container filter on the cgroup's names ("" = any).
	Service   string
	Container string
	// Port and NetNS keep only rows with that remote port / network
	// namespace inode (0 = any). Rollup rows that mixed ports or
	// namespaces have 0 and so match no Port/NetNS filter.
	Port  uint16
	NetNS uint32
	// Namespace and Pod filter on the pod's Kubernetes names (Pod also
	// matches the pod UID).
	Namespace string
	Pod       string
	// App, Cgroup and Scope filter on the process's app, the cgroup's
	// path and the remote's scope (exact; "" = any).
	App    string
	Cgroup string
	Scope  string
}

// Row is one group of a Query's result. Only the fields of the query's
// dimensions are set.
type Row struct {
	PID       uint32
	StartNS   uint64
	Comm      string
	Exe       string
	UID       uint32
	RemoteIP  string
	Protocol  string
	Service   string
	Container string
	// RemotePort and NetNS: see DimPort and DimNetNS.
	RemotePort uint16
	NetNS      uint32
	Namespace  string
	Pod        string
	Workload   string
	App        string
	Cgroup     string
	Scope      string
	TxBytes    uint64
	RxBytes    uint64
	TxCalls    uint64
	RxCalls    uint64

	// RemoteName is the name a local process resolved RemoteIP from (DNS
	// answers, names.go); "" when none was seen. Set with DimRemote.
	RemoteName string
	// Domain is DimDomain's value: the registrable domain of the name.
	Domain string
}

// Total is tx + rx.
func (r Row) Total() uint64 { return r.TxBytes + r.RxBytes }

// Totals sums bytes and calls over the window per group, sorted by total
// bytes descending (ties broken by the group's fields so output is stable).
// It reads the coarsest rollup tier that fits each stretch of the window
// (see plan), so a month-long window costs a few thousand rows.
func (s *Store) Totals(ctx context.Context, q Query) ([]Row, error) {
	by, err := ValidateDims(q.By)
	if err != nil {
		return nil, err
	}
	var out []Row
	err = s.selectRows(ctx, q, selection{edges: q.window(), maxTier: len(Tiers) - 1, by: by, preAgg: true, limit: q.Top},
		func(_ int64, r Row) { out = append(out, r) })
	return out, err
}

// Point is one step of a time series.
type Point struct {
	TsMs    int64 // start of the step, Unix ms
	TxBytes uint64
	RxBytes uint64
}

// Series returns tx/rx bytes per step over [since, until), for all processes
// or those matching pid/comm. Steps without traffic are omitted. Steps are
// multiples of step since the Unix epoch. It reads the coarsest tier whose
// buckets divide step; where only coarser data is left, each bucket lands
// in the step it starts in.
func (s *Store) Series(ctx context.Context, q Query, step time.Duration) ([]Point, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step must be positive")
	}
	stepMs := step.Milliseconds()
	if stepMs <= 0 {
		stepMs = 1
	}
	maxTier := 0
	for i := 1; i < len(Tiers); i++ {
		if stepMs%sizeMs(i) == 0 {
			maxTier = i
		}
	}
	var out []Point
	err := s.selectRows(ctx, q, selection{edges: q.window(), maxTier: maxTier, bucket: stepMs},
		func(tb int64, r Row) { out = append(out, Point{TsMs: tb, TxBytes: r.TxBytes, RxBytes: r.RxBytes}) })
	return out, err
}

// selectRows runs the assembled selection (selectSQL) in one read
// transaction and hands each row to each: its bucket start (0 without a
// bucket) and the group with its sums.
func (s *Store) selectRows(ctx context.Context, q Query, sel selection, each func(tb int64, r Row)) error {
	sel.names = s.hasNames.Load()
	return s.readTx(ctx, func(db querier) error {
		st, err := readTierState(ctx, db)
		if err != nil {
			return s.classify("query", err)
		}
		sqlq, args, ok := st.selectSQL(q, sel)
		if !ok {
			return nil
		}
		rows, err := db.QueryContext(ctx, sqlq, args...)
		if err != nil {
			return s.classify("query", err)
		}
		defer rows.Close()
		for rows.Next() {
			var tb int64
			var r Row
			var dest []any
			if sel.bucket > 0 {
				dest = append(dest, &tb)
			}
			dest = append(dest, scanDest(sel.by, &r)...)
			dest = append(dest, &r.TxBytes, &r.RxBytes, &r.TxCalls, &r.RxCalls)
			if err := rows.Scan(dest...); err != nil {
				return s.classify("query", err)
			}
			each(tb, r)
		}
		if err := rows.Err(); err != nil {
			return s.classify("query", err)
		}
		return nil
	})
}

// readTx runs fn on one connection inside a read transaction, so the tier
// bookkeeping and the rows come from the same snapshot while the daemon
// keeps rolling up.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.sql == nil {
		return &Error{Path: s.path, Op: "query", Err: errors.New("database closed (being reopened)"), Hint: "try again in a moment"}
	}
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return s.classify("query", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return s.classify("query", err)
	}
	err = fn(conn)
	if _, cerr := conn.ExecContext(context.Background(), "COMMIT"); cerr != nil && err == nil {
		err = s.classify("query", cerr)
	}
	return err
}
