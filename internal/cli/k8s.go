package cli

import (
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/bwtracker/bwtracker/internal/k8s"
)

// Flags of `run` that say where the node's kubelet and pod logs are
// (internal/k8s reads them to name pods; "-" turns a source off).
const (
	flagKubeletRoot      = "kubelet-root"
	flagPodLogRoot       = "pod-log-root"
	flagContainerLogRoot = "container-log-root"
)

func k8sFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagKubeletRoot, Value: k8s.DefaultKubeletRoot, EnvVars: []string{"BWTRACKER_KUBELET_ROOT"},
			Usage: "the kubelet's root `DIR` (its pods/<uid>/ name pods whose log directories are missing); - turns it off"},
		&cli.StringFlag{Name: flagPodLogRoot, Value: k8s.DefaultPodLogRoot, EnvVars: []string{"BWTRACKER_POD_LOG_ROOT"},
			Usage: "the kubelet's pod log `DIR` (<namespace>_<pod>_<uid>/<container>/): Kubernetes namespace, pod and container names; - turns it off"},
		&cli.StringFlag{Name: flagContainerLogRoot, Value: k8s.DefaultContainerLogRoot, EnvVars: []string{"BWTRACKER_CONTAINER_LOG_ROOT"},
			Usage: "the kubelet's container log link `DIR` (<pod>_<namespace>_<container>-<id>.log): container id to name; - turns it off"},
	}
}

// k8sResolver names the pods of this node from the directories the flags
// give. A directory given explicitly but missing is logged, not refused:
// the kubelet may create it later.
func k8sResolver(c *cli.Context, log *slog.Logger) *k8s.Resolver {
	for _, f := range []string{flagKubeletRoot, flagPodLogRoot, flagContainerLogRoot} {
		if d := c.String(f); c.IsSet(f) && d != "-" {
			if _, err := os.Stat(d); err != nil {
				log.Warn("Kubernetes names: directory not readable; pods will be named from the other sources", "flag", "--"+f, "err", err)
			}
		}
	}
	return k8s.New(k8s.Options{KubeletRoot: c.String(flagKubeletRoot), PodLogRoot: c.String(flagPodLogRoot),
		ContainerLogRoot: c.String(flagContainerLogRoot)})
}
