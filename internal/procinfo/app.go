package procinfo

// The app rule: what a person calls the program a process belongs to. It is
// defined here once; the collector stores its result with each process row
// (processes.app) and `report --by app`, `top` and the API group by it.
//
//  1. The executable's base name: /usr/lib/chromium/chromium -> "chromium".
//  2. For an interpreter (python, pypy, node, deno, bun, java, ruby, perl,
//     php, lua, Rscript, tclsh, and the shells sh, bash, dash, zsh, ksh,
//     mksh, fish) the script, module or jar from the command line, followed
//     by the interpreter as it was invoked (argv[0]'s base name, so
//     python3 -> /usr/bin/python3.11 still reads "python3"):
//     `python3 -m http.server` -> "http.server (python3)",
//     `python3 /path/to/foo.py` -> "foo.py (python3)",
//     `java -jar x.jar` -> "x.jar (java)", `java -cp lib org.x.Main` ->
//     "org.x.Main (java)", `node server.js` -> "server.js (node)",
//     `bash backup.sh` -> "backup.sh (bash)". An interpreter running code
//     given inline (python3 -c, node -e, sh -c, perl -e) or an interactive
//     one names no script: the app is the interpreter alone ("python3").
//  3. Folding: a process whose parent (the parent PID chain in /proc at
//     collection time) runs the same executable takes the parent's app when
//     its own app is the same or names no script: chromium renderers and
//     zygotes, multiprocessing workers (spawn and forkserver children run
//     `python3 -c ...`), preforking servers' workers (which may rewrite
//     argv, e.g. "nginx: worker process") all fold into the one app that
//     started them. A child that runs another script (foo.py starting
//     `python3 bar.py`) stays its own app. Folding follows the chain up to
//     maxFold ancestors.
//  4. Nothing known (a kernel thread, or a process gone before /proc was
//     read and without an exec event): the kernel's comm.
//
// Relative executable paths from exec events (./bwtracker, bin/x) are made
// absolute with the process's /proc/PID/exe, else its cwd (Remember).
// Command lines are split on NUL as the kernel keeps them; rows migrated
// from older databases only have the space-joined command line and are
// split on spaces (store.migrateApps), and they never fold (no parents).

import (
	"path"
	"strings"
)

// maxFold bounds how many ancestors folding walks.
const maxFold = 32

// interpreter families, by base name without version digits
// (python3.11 -> python).
var interpreters = map[string]string{
	"python": "python", "pypy": "python",
	"node": "node", "nodejs": "node", "deno": "node", "bun": "node",
	"java": "java",
	"ruby": "ruby",
	"perl": "perl",
	"php":  "php",
	"lua":  "lua", "luajit": "lua",
	"rscript": "r",
	"tclsh":   "tcl", "wish": "tcl",
	"sh": "sh", "bash": "sh", "dash": "sh", "zsh": "sh", "ksh": "sh", "mksh": "sh", "fish": "sh", "ash": "sh",
}

// family says which interpreter family a base name belongs to ("" = none):
// version suffixes such as 3, 3.11, 5.36 are ignored.
func family(base string) string {
	b := strings.ToLower(base)
	b = strings.TrimRight(b, "0123456789.-_")
	if b == "" {
		return ""
	}
	return interpreters[b]
}

// optArgs lists, per family, the options that take the next argument as
// their value (so it is not the script). Options not listed take none.
var optArgs = map[string]map[string]bool{
	"python": set("-W", "-X", "--check-hash-based-pycs"),
	"node":   set("-r", "--require", "--loader", "--experimental-loader", "--import", "--conditions", "-C", "--input-type", "--env-file", "--title"),
	"java": set("-cp", "-classpath", "--class-path", "-p", "--module-path", "--add-modules", "--add-opens", "--add-exports",
		"--add-reads", "--patch-module", "--upgrade-module-path", "--limit-modules", "--enable-native-access"),
	"ruby": set("-r", "-I", "-C", "-E", "--encoding"),
	"perl": set("-I", "-M", "-m", "-x"),
	"php":  set("-c", "-d", "-z"),
	"lua":  set("-l"),
	"r":    set(),
	"tcl":  set(),
	"sh":   set("-o", "+o", "-O", "+O", "--rcfile", "--init-file"),
}

// inline lists, per family, the options whose value is code given inline:
// no script follows.
var inline = map[string]map[string]bool{
	"python": set("-c"),
	"node":   set("-e", "--eval", "-p", "--print"),
	"ruby":   set("-e"),
	"perl":   set("-e", "-E"),
	"php":    set("-r", "-a"),
	"lua":    set("-e"),
	"r":      set("-e"),
	"sh":     set("-c"),
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// AppName applies rules 1, 2 and 4 of the app rule (no folding) to one
// process: its executable path (absolute, as /proc/PID/exe), its argv, and
// its comm as the fallback.
func AppName(exe string, argv []string, comm string) string {
	exe = strings.TrimSuffix(exe, " (deleted)")
	base := ""
	if exe != "" {
		base = path.Base(exe)
	} else if len(argv) > 0 && argv[0] != "" && !strings.ContainsAny(argv[0], " :") {
		base = path.Base(argv[0])
	}
	if base == "" || base == "." || base == "/" {
		if comm != "" {
			return comm
		}
		return ""
	}
	fam := family(base)
	if fam == "" {
		return base
	}
	// The interpreter as invoked: argv[0] when it names the same family
	// (python3 for /usr/bin/python3.11), else the executable.
	shown := base
	if len(argv) > 0 {
		if a0 := path.Base(argv[0]); a0 != "" && !strings.ContainsAny(a0, " :") && family(a0) == fam {
			shown = a0
		}
	}
	if s := script(fam, argv); s != "" {
		return s + " (" + shown + ")"
	}
	return shown
}

// script finds the script, module, jar or main class in argv[1:] ("" when
// the interpreter runs inline code, reads stdin or is interactive).
func script(fam string, argv []string) string {
	if len(argv) < 2 {
		return ""
	}
	args := argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "" {
			continue
		}
		if a == "-" {
			return "" // the program comes from stdin
		}
		if a == "--" {
			if i+1 < len(args) {
				return base(args[i+1])
			}
			return ""
		}
		if a[0] != '-' && !(fam == "sh" && a[0] == '+') {
			if fam == "java" {
				return a // a main class: keep its package
			}
			return base(a)
		}
		name, val, hasVal := strings.Cut(a, "=")
		switch {
		case fam == "python" && strings.HasPrefix(a, "-m"):
			if len(a) > 2 {
				return a[2:]
			}
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case fam == "java" && (a == "-jar" || a == "--jar"):
			if i+1 < len(args) {
				return base(args[i+1])
			}
			return ""
		case fam == "java" && (a == "-m" || a == "--module"):
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case fam == "java" && name == "--module" && hasVal:
			return val
		case fam == "php" && a == "-f":
			if i+1 < len(args) {
				return base(args[i+1])
			}
			return ""
		case inline[fam][a]:
			return ""
		case fam == "sh" && len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.ContainsRune(a[1:], 'c'):
			return "" // sh -ec 'cmd'
		case fam == "python" && len(a) > 1 && a[1] != '-' && strings.ContainsRune(a[1:], 'c'):
			return "" // python3 -uc 'code'
		case fam == "perl" && len(a) > 1 && (strings.ContainsRune(a[1:], 'e') || strings.ContainsRune(a[1:], 'E')) && a[1] != 'M' && a[1] != 'I' && a[1] != 'm':
			return "" // perl -ne '...'
		case optArgs[fam][a] && !hasVal:
			i++ // the option's value
		}
	}
	return ""
}

func base(p string) string {
	b := path.Base(p)
	if b == "." || b == "/" {
		return p
	}
	return b
}

// namesScript says whether an app name (from AppName) names a script, i.e.
// has the form "script (interpreter)".
func namesScript(app string) bool {
	return strings.HasSuffix(app, ")") && strings.Contains(app, " (")
}

// Fold is rule 3 for one step: the app of a process whose own app is own
// and whose parent runs the same executable and has the (folded) app
// parent.
func Fold(own, parent string) string {
	if parent != "" && (own == parent || !namesScript(own)) {
		return parent
	}
	return own
}

// SplitCmdline splits a space-joined command line (as older databases
// stored it) into argv; exact for arguments without spaces.
func SplitCmdline(cmdline string) []string {
	return strings.Fields(cmdline)
}
