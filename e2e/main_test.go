package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/upmedic/upmedic/internal/peers"
)

// The suite's shared state is built once, lazily, so that a run that selects
// none of its tests (go test -run ZeroAllocs ./...) builds nothing. These are
// the only package-level variables; each is written once under its sync.Once.
var (
	rootOnce sync.Once
	root     struct {
		repo string // the module's directory (holds go.mod)
		run  string // a 0755 temporary directory for binaries, configs, sockets, logs
		err  error
	}

	buildOnce sync.Once
	built     struct {
		bin string // the upmedic binary, built as the Dockerfile builds it
		err error
	}

	toolsOnce sync.Once
	found     tools
)

// buildVersion is the VERSION build argument the suite builds with;
// `upmedic version` must print it.
const buildVersion = "e2e-test"

func TestMain(m *testing.M) {
	code := m.Run()
	writeReport()
	if root.run != "" && os.Getenv("UPMEDIC_E2E_KEEP") == "" {
		_ = os.RemoveAll(root.run)
	} else if root.run != "" {
		fmt.Fprintln(os.Stderr, "e2e: UPMEDIC_E2E_KEEP set: kept", root.run)
	}
	os.Exit(code)
}

// dirs returns the repository's directory and the run directory, creating
// the latter. Everything a scenario starts lives under the run directory,
// which is 0755 so that nginx's www-data workers and the unprivileged
// upmedic can reach their sockets: a permission error must come from the
// socket's own mode, never from a parent directory.
func dirs(t *testing.T) (repo, run string) {
	t.Helper()
	rootOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			root.err = err
			return
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				root.repo = d
				break
			}
			if filepath.Dir(d) == d {
				root.err = errors.New("no go.mod above " + wd)
				return
			}
		}
		if root.run, root.err = os.MkdirTemp("", "upmedic-e2e-"); root.err == nil {
			root.err = os.Chmod(root.run, 0o755)
		}
	})
	if root.err != nil {
		t.Fatalf("set up the suite's directories: %v", root.err)
	}
	return root.repo, root.run
}

// upmedicBinary returns the upmedic binary, building it on first use by
// replaying the Dockerfile's build stage (see buildLikeDockerfile).
func upmedicBinary(t *testing.T) string {
	t.Helper()
	repo, run := dirs(t)
	buildOnce.Do(func() {
		built.bin, built.err = buildLikeDockerfile(repo, filepath.Join(run, "out"))
	})
	if built.err != nil {
		t.Fatalf("build upmedic as the Dockerfile does: %v", built.err)
	}
	return built.bin
}

// buildLikeDockerfile runs the RUN instructions of the Dockerfile's build
// stage on this machine, with the stage's /out/ directory moved to out, so
// that the suite tests the binary the image ships: the same go build flags
// (CGO_ENABLED=0, -trimpath, -ldflags) and the same /etc/passwd entry. It
// returns out/rootfs/upmedic. A RUN it does not know how to replay safely
// here (anything but go mod download, go build and files written under
// /out/) is an error: teach this function about it.
func buildLikeDockerfile(repo, out string) (string, error) {
	df, err := parseDockerfile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		return "", err
	}
	build := df.stage("build")
	if build == nil {
		return "", errors.New("Dockerfile: no stage named build")
	}
	ran := 0
	for _, in := range build.instrs {
		if in.cmd != "RUN" {
			continue
		}
		switch {
		case in.args == "go mod download":
			continue // go test already has the modules
		case strings.Contains(in.args, "go build") && strings.Contains(in.args, "/out/"),
			strings.Contains(in.args, "/out/") && !strings.Contains(in.args, "go "):
		default:
			return "", fmt.Errorf("Dockerfile line %d: RUN %q: the suite does not know how to replay it", in.line, in.args)
		}
		script := strings.ReplaceAll(in.args, "/out/", out+"/")
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "VERSION="+buildVersion)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("Dockerfile line %d: %s: %v\n%s", in.line, script, err, b)
		}
		ran++
	}
	bin := filepath.Join(out, "rootfs", "upmedic")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("after %d RUN instructions of the build stage: %w", ran, err)
	}
	// The run directory's parents are 0755; the binary must be too, for
	// the unprivileged upmedic.
	return bin, os.Chmod(bin, 0o755)
}

// dockerfile is the little of a Dockerfile the suite reads: stages and
// their instructions, continuation lines joined, comments dropped.
type dockerfile struct {
	stages []*dfStage
}

type dfStage struct {
	name   string    // the AS name, lower case
	from   string    // the FROM image
	instrs []dfInstr // the FROM first
	raw    []string  // the stage's source lines, from its FROM on
}

type dfInstr struct {
	cmd  string // upper case: RUN, COPY, ...
	args string
	line int // 1-based line of the instruction's first line
}

func (d *dockerfile) stage(name string) *dfStage {
	for _, s := range d.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

var fromLine = regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$`)

func parseDockerfile(path string) (*dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := new(dockerfile)
	var cur *dfStage
	var pending strings.Builder
	pendingLine := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if m := fromLine.FindStringSubmatch(trimmed); m != nil && pending.Len() == 0 {
			cur = &dfStage{from: m[1], name: strings.ToLower(m[2])}
			d.stages = append(d.stages, cur)
		}
		if cur != nil {
			cur.raw = append(cur.raw, line)
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if pending.Len() == 0 {
			pendingLine = n
		} else {
			pending.WriteByte(' ')
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(strings.TrimSpace(body))
			continue
		}
		pending.WriteString(trimmed)
		text := pending.String()
		pending.Reset()
		if cur == nil {
			continue // ARG before the first FROM
		}
		cmd, args, _ := strings.Cut(text, " ")
		cur.instrs = append(cur.instrs, dfInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: pendingLine})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pending.Len() > 0 {
		return nil, fmt.Errorf("%s: ends in a continuation line", path)
	}
	return d, nil
}

// tools are the real programs the suite drives, found on this machine.
type tools struct {
	nginx, gunicorn, phpFPM, node, buildah, systemdAnalyze, chromium string
}

// lookTools finds the programs once (internal/peers lists them, with what
// each one's absence skips). gunicorn is Debian's (/usr/bin/gunicorn,
// running /usr/bin/python3), as on a fresh CI machine.
func lookTools() tools {
	toolsOnce.Do(func() {
		found = tools{
			nginx:          peers.Get("nginx").Find(),
			gunicorn:       peers.Get("gunicorn").Find(),
			phpFPM:         peers.Get("php-fpm").Find(),
			node:           peers.Get("node").Find(),
			buildah:        peers.Get("buildah").Find(),
			systemdAnalyze: peers.Get("systemd-analyze").Find(),
			chromium:       peers.Get("chromium").Find(),
		}
		var b strings.Builder
		for _, kv := range [][2]string{
			{"nginx", found.nginx}, {"gunicorn", found.gunicorn}, {"php-fpm", found.phpFPM},
			{"node", found.node}, {"buildah", found.buildah}, {"systemd-analyze", found.systemdAnalyze}, {"chromium", found.chromium},
		} {
			v := kv[1]
			if v == "" {
				v = "NOT FOUND"
			}
			fmt.Fprintf(&b, " %s=%s", kv[0], v)
		}
		fmt.Fprintln(os.Stderr, "e2e: tools:"+b.String())
	})
	return found
}

// need skips t, naming what is missing and how to install it, unless every
// named peer (internal/peers) exists; with CI=true it fails t instead.
func need(t *testing.T, names ...string) tools {
	t.Helper()
	lookTools()
	paths := peers.Need(t, names...)
	var have []string
	for _, n := range names {
		have = append(have, n+"="+paths[n])
	}
	t.Logf("using %s", strings.Join(have, " "))
	return found
}

// needRoot skips t when the suite does not run as root: nginx's master
// process, its www-data workers, an unprivileged upmedic (uid 65534) and
// chroot all need it. With CI=true (CI runs as root) it fails t instead.
func needRoot(t *testing.T) {
	t.Helper()
	peers.NeedRoot(t, "nginx master with www-data workers, upmedic as uid 65534, chroot")
}
