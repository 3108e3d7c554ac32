package e2e

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinaryBuildFlags checks that the binary the suite tests carries the
// Dockerfile's build settings: static, trimmed paths, stripped, versioned.
func TestBinaryBuildFlags(t *testing.T) {
	bin := upmedicBinary(t)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// -ldflags is not recorded when -trimpath is set (it may hold paths):
	// TestBinaryIsStatic checks -s -w, TestBinaryInEmptyChroot the version.
	want := map[string]string{
		"CGO_ENABLED": "0",
		"-trimpath":   "true",
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("build setting %s=%q, want %q (all: %v)", k, settings[k], v, settings)
		}
	}
	repo, _ := dirs(t)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(repo+"/")) {
		t.Errorf("the binary contains the build directory %s: -trimpath did not apply", repo)
	}
}

// TestBinaryIsStatic checks that the binary needs no dynamic loader and no
// shared library, as FROM scratch requires.
func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(upmedicBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a PT_DYNAMIC segment")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries (DT_NEEDED): %v", libs)
	}
	if f.Section(".interp") != nil {
		t.Error("the binary has an .interp section")
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not apply")
	}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("the binary has DWARF (%s): -w did not apply", s.Name)
			break
		}
	}
}

// TestBinaryInEmptyChroot runs the binary in a directory that holds nothing
// else (no libc, no /etc, no /proc, no /dev), as uid 65532 like the image,
// with the image's UPMEDIC_ADMIN_LISTEN form: `version`, then `check` with
// nothing listening (exit 1), against a ready sidecar (exit 0, "ready") and
// against one whose app is down (exit 1).
func TestBinaryInEmptyChroot(t *testing.T) {
	needRoot(t)
	need(t, "node")
	bin := upmedicBinary(t)
	jail := scenarioDir(t)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(jail, "upmedic"), string(b))
	if err := os.Chmod(filepath.Join(jail, "upmedic"), 0o755); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(jail); len(entries) != 1 {
		t.Fatalf("the chroot holds %d entries, want only the binary", len(entries))
	}
	inJail := func(env []string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command("/upmedic", args...)
		// exec resolves Path on the host before the chroot: give the path
		// as it is inside.
		cmd.Path = "/upmedic"
		cmd.Dir = "/"
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: jail,
			Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatalf("run /upmedic %v in the chroot: %v", args, err)
		}
		return o.String(), e.String(), code
	}

	out, errOut, code := inJail(nil, "version")
	if code != 0 || out != "upmedic "+buildVersion+"\n" {
		t.Errorf("upmedic version: exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, "upmedic "+buildVersion+"\n")
	}

	// The image sets UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901; check connects to
	// that address, which on Linux is this host. Same form, a free port.
	adminPort := freePort(t)
	checkEnv := []string{"UPMEDIC_ADMIN_LISTEN=" + strings.Replace(imageEnv(t)["UPMEDIC_ADMIN_LISTEN"], ":9901", ":"+strconv.Itoa(adminPort), 1)}
	if !strings.HasPrefix(checkEnv[0], "UPMEDIC_ADMIN_LISTEN=0.0.0.0:") {
		t.Fatalf("the Dockerfile's UPMEDIC_ADMIN_LISTEN changed: %q; update this test", checkEnv[0])
	}

	out, errOut, code = inJail(checkEnv, "check")
	if want := "not ready: ask 127.0.0.1:" + strconv.Itoa(adminPort) + " (loopback: the admin API listens on all interfaces): connect: connection refused\n"; code != 1 || errOut != want {
		t.Errorf("upmedic check with nothing listening: exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}

	// A live sidecar (on loopback) in front of a live app.
	dir := scenarioDir(t)
	node, app := startNode(t, dir)
	startUpmedic(t, dir, loopback(freePort(t)), []string{
		"UPMEDIC_UPSTREAM=" + app,
		"UPMEDIC_ADMIN_LISTEN=" + loopback(adminPort),
		"UPMEDIC_HEALTH_INTERVAL=100ms",
	})
	waitReadyz(t, loopback(adminPort), http.StatusOK)
	out, errOut, code = inJail(checkEnv, "check")
	if code != 0 || out != "ready\n" {
		t.Errorf("upmedic check against a ready sidecar: exit %d, stdout %q, stderr %q; want 0 and ready", code, out, errOut)
	}

	node.stop()
	waitReadyz(t, loopback(adminPort), http.StatusServiceUnavailable)
	out, errOut, code = inJail(checkEnv, "check")
	if code != 1 || !strings.Contains(errOut, "not ready") {
		t.Errorf("upmedic check while the app is down: exit %d, stdout %q, stderr %q; want 1 and the reason", code, out, errOut)
	}
}

// waitReadyz polls the admin API's /readyz until it answers status.
func waitReadyz(t *testing.T, admin string, status int) {
	t.Helper()
	deadline := time.Now().Add(readyWithin)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
			last = resp.Status + " " + b.String()
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/readyz at %s did not answer %d within %v; last: %s", admin, status, readyWithin, last)
}

// imageEnv returns the ENV of the Dockerfile's final stage.
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	final := finalStage(t)
	env := map[string]string{}
	for _, in := range final.instrs {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("Dockerfile line %d: ENV %q: the suite reads only KEY=value pairs", in.line, in.args)
			}
			env[k] = v
		}
	}
	return env
}

func finalStage(t *testing.T) *dfStage {
	t.Helper()
	repo, _ := dirs(t)
	df, err := parseDockerfile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := df.stage("final")
	if final == nil || df.stages[len(df.stages)-1] != final {
		t.Fatal("Dockerfile: the last stage must be named final (docker build builds the last stage)")
	}
	if final.from != "scratch" {
		t.Errorf("Dockerfile: the final stage is FROM %s, want scratch", final.from)
	}
	return final
}

// TestImageFinalStage builds the Dockerfile's final stage, exactly as
// written, with buildah (no engine, no registry: the golang base image cannot
// be pulled here). A stand-in "build" stage FROM scratch holds the rootfs
// that the suite built by replaying the real build stage, so the final
// stage's COPY --from=build is the real one. Then it checks the image's
// config (User, Entrypoint, ExposedPorts, Healthcheck, Env) and its files.
func TestImageFinalStage(t *testing.T) {
	needRoot(t)
	tl := need(t, "buildah")
	bin := upmedicBinary(t)
	rootfs := filepath.Dir(bin) // out/rootfs: upmedic, etc/passwd, etc/group
	final := finalStage(t)

	dir := scenarioDir(t)
	dockerfile := filepath.Join(dir, "Dockerfile.final")
	writeFile(t, dockerfile, "# written by the e2e suite: a stand-in for the build stage, then the real final stage\n"+
		"FROM scratch AS build\nCOPY rootfs/ /out/rootfs/\n\n"+strings.Join(final.raw, "\n")+"\n")
	storage := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "runroot"), "--storage-driver", "vfs"}
	buildah := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tl.buildah, append(slices.Clone(storage), args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("buildah %v: %v\n%s%s", args, err, o.String(), e.String())
		}
		return o.String()
	}
	const image = "localhost/upmedic-e2e:test"
	buildah("bud", "--format", "docker", "--isolation", "chroot", "--target", "final",
		"-t", image, "-f", dockerfile, filepath.Dir(rootfs))
	t.Cleanup(func() {
		_ = exec.Command(tl.buildah, append(slices.Clone(storage), "rmi", "--all", "--force")...).Run()
	})

	var inspect struct {
		Docker struct {
			Config struct {
				User         string
				Entrypoint   []string
				Cmd          []string
				ExposedPorts map[string]struct{}
				Env          []string
				Healthcheck  *struct {
					Test     []string
					Interval time.Duration
					Timeout  time.Duration
				}
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(buildah("inspect", "--type", "image", image)), &inspect); err != nil {
		t.Fatal(err)
	}
	c := inspect.Docker.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/upmedic"}) || len(c.Cmd) != 0 {
		t.Errorf("Entrypoint %q Cmd %q, want [/upmedic] and none", c.Entrypoint, c.Cmd)
	}
	ports := make([]string, 0, len(c.ExposedPorts))
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"8080/tcp", "9901/tcp"}) {
		t.Errorf("ExposedPorts %v, want 8080/tcp and 9901/tcp", ports)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/upmedic", "check"}) {
		t.Errorf("Healthcheck %+v, want CMD /upmedic check", c.Healthcheck)
	} else if c.Healthcheck.Timeout <= 5*time.Second {
		// `upmedic check` gives the admin API 5s: the HEALTHCHECK's
		// timeout must be longer, or a slow answer is killed instead of
		// reported.
		t.Errorf("Healthcheck timeout %v, want over upmedic check's own 5s", c.Healthcheck.Timeout)
	}
	for _, want := range []string{"UPMEDIC_LISTEN=0.0.0.0:8080", "UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901"} {
		if !slices.Contains(c.Env, want) {
			t.Errorf("Env %q lacks %s", c.Env, want)
		}
	}

	// The image's files: the binary and the user's names, nothing else.
	ctr := strings.TrimSpace(buildah("from", "--pull-never", image))
	t.Cleanup(func() { _ = exec.Command(tl.buildah, append(slices.Clone(storage), "rm", ctr)...).Run() })
	mnt := strings.TrimSpace(buildah("mount", ctr))
	var files []string
	_ = filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(mnt, p)
			files = append(files, rel+" "+fi.Mode().String())
		}
		return nil
	})
	slices.Sort(files)
	if want := []string{"etc/group -rw-r--r--", "etc/passwd -rw-r--r--", "upmedic -rwxr-xr-x"}; !slices.Equal(files, want) {
		t.Errorf("the image holds %q, want %q", files, want)
	}
	passwd, _ := os.ReadFile(filepath.Join(mnt, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(mnt, "etc", "group"))
	if !bytes.HasPrefix(passwd, []byte("upmedic:x:65532:65532:")) || !bytes.HasPrefix(group, []byte("upmedic:x:65532:")) {
		t.Errorf("/etc/passwd %q, /etc/group %q: want upmedic as 65532:65532", passwd, group)
	}
	// The image's entrypoint, run as the image's user.
	out := buildah("run", "--isolation", "chroot", ctr, "--", "/upmedic", "version")
	if out != "upmedic "+buildVersion+"\n" {
		t.Errorf("buildah run /upmedic version: %q", out)
	}
	// In the image, `upmedic env` says which values the image's ENV set.
	rows := envTable(t, buildah("run", "--isolation", "chroot", ctr, "--", "/upmedic", "env"))
	for _, v := range []string{"UPMEDIC_LISTEN", "UPMEDIC_ADMIN_LISTEN"} {
		if got := rows[v]; len(got) < 2 || got[1] != "image ENV" || !strings.HasPrefix(got[0], "0.0.0.0:") {
			t.Errorf("upmedic env in the image: %s %q, want 0.0.0.0:... from the image ENV", v, got)
		}
	}
}
