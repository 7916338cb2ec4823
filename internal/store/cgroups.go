package store

import (
	"context"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

// Cgroup is the cgroups table: what each cgroup v2 id seen in samples was
// called when it was seen (systemd unit, container, pod and its Kubernetes
// names). Rows are kept
// after the cgroup is gone so history stays named. Cgroup ids are inode
// numbers and can repeat after a reboot; the newest name wins.
type Cgroup struct {
	ID          uint64 `gorm:"primaryKey;column:id;autoIncrement:false"`
	Path        string `gorm:"column:path;not null;default:''"`
	Service     string `gorm:"column:service;not null;default:''"`
	UserUnit    string `gorm:"column:user_unit;not null;default:''"`
	Container   string `gorm:"column:container;not null;default:''"` // runtime:shortid
	ContainerID string `gorm:"column:container_id;not null;default:''"`
	Runtime     string `gorm:"column:runtime;not null;default:''"`
	PodUID      string `gorm:"column:pod_uid;not null;default:''"`
	// Kubernetes names (internal/k8s); schema 2 files without these
	// columns get them at open (AutoMigrate adds them, '' for old rows).
	Namespace     string `gorm:"column:namespace;not null;default:''"`
	Pod           string `gorm:"column:pod;not null;default:''"`
	ContainerName string `gorm:"column:container_name;not null;default:''"`
	Workload      string `gorm:"column:workload;not null;default:''"` // kind/name
	SeenMs        int64  `gorm:"column:seen_ms;not null"`
}

// TableName pins the table name.
func (Cgroup) TableName() string { return "cgroups" }

// PutCgroups records the names of cgroups (upsert by id).
func (s *Store) PutCgroups(ctx context.Context, infos []cgroupinfo.Info) error {
	if len(infos) == 0 {
		return nil
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return s.classify("begin write", err)
	}
	now := time.Now().UnixMilli()
	for _, in := range infos {
		_, err := tx.ExecContext(ctx, `INSERT INTO cgroups (id, path, service, user_unit, container, container_id, runtime, pod_uid,
  namespace, pod, container_name, workload, seen_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET path = excluded.path, service = excluded.service, user_unit = excluded.user_unit,
  container = excluded.container, container_id = excluded.container_id, runtime = excluded.runtime,
  pod_uid = excluded.pod_uid, namespace = excluded.namespace, pod = excluded.pod,
  container_name = excluded.container_name, workload = excluded.workload, seen_ms = excluded.seen_ms`,
			int64(in.ID), in.Path, in.Service, in.UserUnit, in.ContainerLabel(), in.ContainerID, in.Runtime, in.PodUID,
			in.Namespace, in.Pod, in.ContainerName, in.Workload(), now)
		if err != nil {
			tx.Rollback()
			return s.classify("write cgroups", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.classify("commit", err)
	}
	return nil
}
