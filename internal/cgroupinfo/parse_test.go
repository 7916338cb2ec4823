package cgroupinfo

import (
	"strings"
	"testing"
)

const (
	hexA = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
	hexB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid1 = "6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b"
)

var uid1Underscored = strings.ReplaceAll(uid1, "-", "_")

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Info
	}{
		{"root", "/", Info{Path: "/"}},
		{"init", "/init.scope", Info{Path: "/init.scope", Service: "init.scope"}},
		{"system service", "/system.slice/nginx.service",
			Info{Path: "/system.slice/nginx.service", Service: "nginx.service"}},
		{"templated service", "/system.slice/system-getty.slice/getty@tty1.service",
			Info{Path: "/system.slice/system-getty.slice/getty@tty1.service", Service: "getty@tty1.service"}},
		{"service sub-cgroup", "/system.slice/docker.service/payload",
			Info{Path: "/system.slice/docker.service/payload", Service: "docker.service"}},
		{"login session", "/user.slice/user-1000.slice/session-3.scope",
			Info{Path: "/user.slice/user-1000.slice/session-3.scope", Service: "session-3.scope"}},
		{"user manager itself", "/user.slice/user-1000.slice/user@1000.service/init.scope",
			Info{Path: "/user.slice/user-1000.slice/user@1000.service/init.scope", Service: "user@1000.service", UserUnit: "init.scope"}},
		{"user app scope", "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-5b1c.scope",
			Info{Path: "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-5b1c.scope",
				Service: "user@1000.service", UserUnit: "vte-spawn-5b1c.scope"}},
		{"user service", "/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service",
			Info{Path: "/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service",
				Service: "user@1000.service", UserUnit: "pipewire.service"}},
		{"docker systemd driver", "/system.slice/docker-" + hexA + ".scope",
			Info{Path: "/system.slice/docker-" + hexA + ".scope", ContainerID: hexA, Runtime: RuntimeDocker}},
		{"docker cgroupfs driver", "/docker/" + hexA,
			Info{Path: "/docker/" + hexA, ContainerID: hexA, Runtime: RuntimeDocker}},
		{"docker cgroupfs nested", "/docker/" + hexA + "/init",
			Info{Path: "/docker/" + hexA + "/init", ContainerID: hexA, Runtime: RuntimeDocker}},
		{"docker-compose unit is not a container", "/system.slice/docker-compose@web.service",
			Info{Path: "/system.slice/docker-compose@web.service", Service: "docker-compose@web.service"}},
		{"k8s containerd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid1Underscored + ".slice/cri-containerd-" + hexA + ".scope",
			Info{Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid1Underscored + ".slice/cri-containerd-" + hexA + ".scope",
				ContainerID: hexA, Runtime: RuntimeContainerd, PodUID: uid1}},
		{"k8s cri-o besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid1Underscored + ".slice/crio-" + hexB + ".scope",
			Info{Path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid1Underscored + ".slice/crio-" + hexB + ".scope",
				ContainerID: hexB, Runtime: RuntimeCRIO, PodUID: uid1}},
		{"k8s guaranteed pod slice only",
			"/kubepods.slice/kubepods-pod" + uid1Underscored + ".slice",
			Info{Path: "/kubepods.slice/kubepods-pod" + uid1Underscored + ".slice", PodUID: uid1}},
		{"cri-o conmon is not the container",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid1Underscored + ".slice/crio-conmon-" + hexB + ".scope",
			Info{Path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid1Underscored + ".slice/crio-conmon-" + hexB + ".scope",
				PodUID: uid1}},
		{"k8s cgroupfs driver",
			"/kubepods/burstable/pod" + uid1 + "/" + hexA,
			Info{Path: "/kubepods/burstable/pod" + uid1 + "/" + hexA, ContainerID: hexA, Runtime: RuntimeKubernetes, PodUID: uid1}},
		{"k8s cgroupfs guaranteed",
			"/kubepods/pod" + uid1 + "/" + hexB,
			Info{Path: "/kubepods/pod" + uid1 + "/" + hexB, ContainerID: hexB, Runtime: RuntimeKubernetes, PodUID: uid1}},
		{"podman machine.slice", "/machine.slice/libpod-" + hexB + ".scope",
			Info{Path: "/machine.slice/libpod-" + hexB + ".scope", ContainerID: hexB, Runtime: RuntimePodman}},
		{"podman container subgroup", "/machine.slice/libpod-" + hexB + ".scope/container",
			Info{Path: "/machine.slice/libpod-" + hexB + ".scope/container", ContainerID: hexB, Runtime: RuntimePodman}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + hexB + ".scope",
			Info{Path: "/machine.slice/libpod-conmon-" + hexB + ".scope"}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + hexB + ".scope",
			Info{Path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + hexB + ".scope",
				Service: "user@1000.service", ContainerID: hexB, Runtime: RuntimePodman}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + hexB,
			Info{Path: "/libpod_parent/libpod-" + hexB, ContainerID: hexB, Runtime: RuntimePodman}},
		{"nerdctl", "/system.slice/nerdctl-" + hexA + ".scope",
			Info{Path: "/system.slice/nerdctl-" + hexA + ".scope", ContainerID: hexA, Runtime: RuntimeContainerd}},
		{"trailing slash and doubles", "//system.slice//sshd.service/",
			Info{Path: "/system.slice/sshd.service", Service: "sshd.service"}},
		{"no leading slash", "system.slice/cron.service",
			Info{Path: "/system.slice/cron.service", Service: "cron.service"}},
		{"arbitrary test cgroup", "/bwtracker-test-1234",
			Info{Path: "/bwtracker-test-1234"}},
		{"outside our cgroup namespace",
			"/../../kubepods.slice/kubepods-pod" + uid1Underscored + ".slice/cri-containerd-" + hexA + ".scope",
			Info{Path: "/../../kubepods.slice/kubepods-pod" + uid1Underscored + ".slice/cri-containerd-" + hexA + ".scope",
				ContainerID: hexA, Runtime: RuntimeContainerd, PodUID: uid1}},
		{"hex under non-docker parent is not a container", "/foo/" + hexA,
			Info{Path: "/foo/" + hexA}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.path)
			if got != tc.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{"/system.slice/docker-" + hexA + ".scope", "docker:3f4e5a6b7c8d"},
		{"/system.slice/nginx.service", "nginx.service"},
		{"/bwtracker-test-1", "/bwtracker-test-1"},
	} {
		if got := Parse(tc.path).Owner(); got != tc.want {
			t.Errorf("Parse(%q).Owner() = %q, want %q", tc.path, got, tc.want)
		}
		if i := Parse(tc.path); i.ContainerID != "" && i.ContainerLabel() != tc.want {
			t.Errorf("Parse(%q).ContainerLabel() = %q, want %q", tc.path, i.ContainerLabel(), tc.want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name, content, want string
		ok                  bool
	}{
		{"pure v2", "0::/system.slice/nginx.service\n", "/system.slice/nginx.service", true},
		{"hybrid", "12:pids:/system.slice/nginx.service\n1:name=systemd:/system.slice/nginx.service\n0::/system.slice/nginx.service\n",
			"/system.slice/nginx.service", true},
		{"root", "0::/\n", "/", true},
		{"deleted", "0::/bwtracker-test-9 (deleted)\n", "/bwtracker-test-9", true},
		{"v1 only", "4:memory:/foo\n1:name=systemd:/foo\n", "", false},
		{"empty", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseProcCgroup(tc.content)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseProcCgroup(%q) = %q, %v; want %q, %v", tc.content, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFindCgroup2Mount(t *testing.T) {
	hybrid := `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	pure := `25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	// Inside a container with a private cgroup namespace plus the host's
	// hierarchy bind-mounted: the one rooted at "/" wins.
	nested := `700 690 0:23 /kubepods.slice/x /sys/fs/cgroup ro - cgroup2 cgroup2 rw
701 690 0:23 / /host/sys/fs/cgroup ro - cgroup2 cgroup2 rw
`
	// A pod with a private cgroup namespace and the host's /sys/fs/cgroup
	// mounted over its own by a hostPath volume.
	podns := `801 790 0:23 /../../.. /host/cgroup ro - cgroup2 cgroup2 rw
800 790 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
`
	escaped := `41 31 0:38 / /mnt/cgroup\040two rw - cgroup2 cgroup2 rw
`
	v1only := `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
`
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified", false},
		{"pure", pure, "/sys/fs/cgroup", false},
		{"nested", nested, "/host/sys/fs/cgroup", false},
		{"pod cgroupns with host mount", podns, "/host/cgroup", false},
		{"escaped", escaped, "/mnt/cgroup two", false},
		{"v1 only", v1only, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindCgroup2Mount(strings.NewReader(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("FindCgroup2Mount = %q, %v; want %q, err=%v", got, err, tc.want, tc.err)
			}
		})
	}
}
