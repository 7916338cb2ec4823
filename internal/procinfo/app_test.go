package procinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestAppName(t *testing.T) {
	for _, tc := range []struct {
		exe, cmdline, comm, want string
	}{
		{"/usr/lib/chromium/chromium", "/usr/lib/chromium/chromium --type=renderer --lang=en", "chromium", "chromium"},
		{"/usr/bin/curl", "curl -s http://x", "curl", "curl"},
		{"/usr/bin/python3.11", "python3 -m http.server 8000", "python3", "http.server (python3)"},
		{"/usr/bin/python3.11", "python3 -mhttp.server", "python3", "http.server (python3)"},
		{"/usr/bin/python3.11", "/usr/bin/python3 /path/to/foo.py --flag", "python3", "foo.py (python3)"},
		{"/usr/bin/python3.11", "python3 -u -X importtime -W ignore ./foo.py", "python3", "foo.py (python3)"},
		{"/usr/bin/python3.11", "python3 -c import os", "python3", "python3"},
		{"/usr/bin/python3.11", "python3 -uc pass", "python3", "python3"},
		{"/usr/bin/python3.11", "python3", "python3", "python3"},
		{"/usr/bin/python3.11", "python3 - <script", "python3", "python3"},
		{"/usr/bin/python3.11", "/usr/bin/python3.11 manage.py runserver", "python3.11", "manage.py (python3.11)"},
		{"/usr/lib/jvm/java-17/bin/java", "java -Xmx1g -jar /opt/x.jar serve", "java", "x.jar (java)"},
		{"/usr/lib/jvm/java-17/bin/java", "java -cp lib/a.jar:lib/b.jar -Dx=y org.example.Main", "java", "org.example.Main (java)"},
		{"/usr/lib/jvm/java-17/bin/java", "java -m my.mod/my.mod.Main", "java", "my.mod/my.mod.Main (java)"},
		{"/usr/lib/jvm/java-17/bin/java", "java -version", "java", "java"},
		{"/usr/bin/node", "node --max-old-space-size=4096 -r dotenv/config server.js", "node", "server.js (node)"},
		{"/usr/bin/node", "node -e console.log(1)", "node", "node"},
		{"/usr/bin/ruby3.1", "ruby -Ilib bin/rails server", "ruby", "rails (ruby)"},
		{"/usr/bin/perl", "perl -w /usr/sbin/munin-node", "perl", "munin-node (perl)"},
		{"/usr/bin/perl", "perl -ne print", "perl", "perl"},
		{"/usr/bin/php8.2", "php -d memory_limit=1G artisan queue:work", "php", "artisan (php)"},
		{"/usr/bin/php8.2", "php -f /srv/cron.php", "php", "cron.php (php)"},
		{"/usr/bin/bash", "/bin/bash /usr/local/bin/backup.sh --full", "backup.sh", "backup.sh (bash)"},
		{"/usr/bin/bash", "bash -c curl http://x", "bash", "bash"},
		{"/usr/bin/dash", "sh -ec do-it", "sh", "sh"},
		{"/usr/bin/bash", "-bash", "bash", "bash"},
		{"/usr/bin/bash", "bash -o pipefail run.sh", "bash", "run.sh (bash)"},
		{"/usr/sbin/nginx", "nginx: worker process", "nginx", "nginx"},
		{"/usr/bin/old (deleted)", "old", "old", "old"},
		{"", "", "kworker/0:1", "kworker/0:1"},
		{"", "/usr/bin/wget -q x", "wget", "wget"},
		{"", "", "", ""},
	} {
		got := AppName(tc.exe, SplitCmdline(tc.cmdline), tc.comm)
		if got != tc.want {
			t.Errorf("AppName(%q, %q) = %q, want %q", tc.exe, tc.cmdline, got, tc.want)
		}
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct{ own, parent, want string }{
		{"python3", "pool.py (python3)", "pool.py (python3)"},           // spawn worker
		{"pool.py (python3)", "pool.py (python3)", "pool.py (python3)"}, // fork
		{"bar.py (python3)", "foo.py (python3)", "bar.py (python3)"},    // another script
		{"chromium", "chromium", "chromium"},
		{"curl", "", "curl"}, // parent runs another program
	} {
		if got := Fold(tc.own, tc.parent); got != tc.want {
			t.Errorf("Fold(%q, %q) = %q, want %q", tc.own, tc.parent, got, tc.want)
		}
	}
}

// fakeProc writes /proc/PID entries into root.
func fakeProc(t *testing.T, root string, pid, ppid int, start uint64, exe string, argv ...string) {
	t.Helper()
	dir := filepath.Join(root, itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := itoa(pid) + " (" + filepath.Base(exe) + ") S " + itoa(ppid) + " 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " + itoa(int(start)) + " 0 0"
	os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
	os.Symlink(exe, filepath.Join(dir, "exe"))
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLookupFolds(t *testing.T) {
	root := t.TempDir()
	py := "/usr/bin/python3.11"
	fakeProc(t, root, 100, 1, 10, "/usr/bin/bash", "bash")
	fakeProc(t, root, 200, 100, 20, py, "python3", "pool.py")
	// multiprocessing spawn workers: same executable, inline code.
	fakeProc(t, root, 201, 200, 30, py, "python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()", "--multiprocessing-fork")
	fakeProc(t, root, 202, 201, 40, py, "python3", "-c", "pass")
	// another script started by the pool: its own app.
	fakeProc(t, root, 203, 200, 40, py, "python3", "other.py")
	// a child whose parent PID was reused by a younger process: no fold.
	fakeProc(t, root, 300, 1, 5, "/usr/bin/perl", "perl", "x.pl")
	fakeProc(t, root, 301, 300, 1, "/usr/bin/perl", "perl", "-e", "1")
	r := New(root)
	for _, tc := range []struct {
		pid   uint32
		start uint64
		want  string
	}{
		{100, 10, "bash"},
		{200, 20, "pool.py (python3)"},
		{201, 30, "pool.py (python3)"},
		{202, 40, "pool.py (python3)"},
		{203, 40, "other.py (python3)"},
		{301, 1, "perl"},
	} {
		if got := r.Lookup(Key{PID: tc.pid, StartNS: tc.start * tickNS}).App; got != tc.want {
			t.Errorf("pid %d: app %q, want %q", tc.pid, got, tc.want)
		}
	}
}

func TestRememberRelativeExe(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "77")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte("77 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0"), 0o644)
	os.Symlink("/srv/app", filepath.Join(dir, "cwd"))
	r := New(root)
	k := Key{PID: 77, StartNS: 9 * tickNS}
	r.Remember(k, "./bin/x")
	// The process is still there (stat), but exe is unreadable: the path is
	// resolved against its cwd.
	r.mu.Lock()
	got := r.cache[k].Exe
	r.mu.Unlock()
	if got != "/srv/app/bin/x" {
		t.Fatalf("exe %q, want /srv/app/bin/x", got)
	}
}

// A real sh running a script is named by the script.
func TestLookupRealScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "wait.sh")
	os.WriteFile(script, []byte("read x\n"), 0o755)
	cmd := exec.Command(sh, script)
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	st, err := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	ticks, _ := StartTicks(st)
	got := New("").Lookup(Key{PID: uint32(cmd.Process.Pid), StartNS: ticks * tickNS}).App
	if want := "wait.sh (sh)"; got != want {
		t.Fatalf("app %q, want %q", got, want)
	}
}
