package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// unitDirectives reads a systemd unit into section -> key -> values (a key
// may repeat).
func unitDirectives(t *testing.T, file string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read %q", file, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestSystemdUnit checks testdata/systemd/upmedic.service: its hardening,
// systemd's own verdict (systemd-analyze verify, with the ExecStart binary
// pointed at the suite's build, since verify wants it to exist) and its
// exposure score (systemd-analyze security --offline).
func TestSystemdUnit(t *testing.T) {
	repo, _ := dirs(t)
	src := filepath.Join(repo, "testdata", "systemd", "upmedic.service")
	u := unitDirectives(t, src)
	svc := u["Service"]
	want := map[string]string{
		"ExecStart":                "/usr/local/bin/upmedic serve",
		"EnvironmentFile":          "/etc/upmedic/env",
		"DynamicUser":              "yes",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
		"CapabilityBoundingSet":    "",
		"RestartPreventExitStatus": "2",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if len(svc["SupplementaryGroups"]) == 0 {
		t.Error("[Service] has no SupplementaryGroups= for the app socket's group")
	}
	if len(u["Install"]["WantedBy"]) == 0 {
		t.Error("[Install] has no WantedBy=")
	}

	tl := need(t, "systemd-analyze")
	bin := upmedicBinary(t)
	dir := scenarioDir(t)
	unit := filepath.Join(dir, "upmedic.service")
	writeFile(t, unit, rewrite(t, readFile(t, src), "ExecStart=/usr/local/bin/upmedic ", "ExecStart="+bin+" "))

	// verify exits 0 on an unknown key or a value it cannot parse, and
	// says so on stderr: any output is a failure.
	out, err := exec.Command(tl.systemdAnalyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure 2.0 or less ("OK"; 10 is unprotected). The score is out of
	// 100 in --threshold.
	out, err = exec.Command(tl.systemdAnalyze, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure over 2.0 (%v):\n%s", err, out)
	} else if m := regexp.MustCompile(`Overall exposure level for \S+: (\S+)`).FindSubmatch(out); m != nil {
		t.Logf("systemd-analyze security: exposure %s", m[1])
	}
}

// compose is the part of a Compose file the test reads.
type compose struct {
	Services map[string]struct {
		Image       string
		Build       *struct{ Context, Dockerfile string }
		Command     yaml.Node
		Environment map[string]string
		Volumes     []string
		NetworkMode string   `yaml:"network_mode"`
		GroupAdd    []string `yaml:"group_add"`
		ReadOnly    bool     `yaml:"read_only"`
		CapDrop     []string `yaml:"cap_drop"`
		Ports       []string
	}
	Volumes map[string]any
}

// TestComposeExample checks examples/docker-compose.yml against the files it
// uses: nginx mounts the repository's own testdata/nginx files, upmedic
// shares nginx's network namespace and listens where the snippet's upstream
// points, and upmedic and the app share the socket's volume and group.
func TestComposeExample(t *testing.T) {
	repo, _ := dirs(t)
	examples := filepath.Join(repo, "examples")
	var c compose
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(examples, "docker-compose.yml"))), &c); err != nil {
		t.Fatal(err)
	}
	nginx, up, app := c.Services["nginx"], c.Services["upmedic"], c.Services["app"]
	if nginx.Image == "" || app.Image == "" || up.Build == nil {
		t.Fatalf("want services nginx (image), app (image) and upmedic (build); got %+v", c.Services)
	}
	if _, err := os.Stat(filepath.Join(examples, up.Build.Context, up.Build.Dockerfile)); err != nil {
		t.Errorf("upmedic's build: %v", err)
	}

	// nginx's mounts exist and cover the three testdata/nginx files.
	mounted := map[string]string{} // container path -> host file
	for _, v := range nginx.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("nginx volume %q", v)
		}
		host := filepath.Join(examples, parts[0])
		if _, err := os.Stat(host); err != nil {
			t.Errorf("nginx volume %q: %v", v, err)
		}
		mounted[parts[1]] = host
	}
	for ctr, file := range map[string]string{
		"/etc/nginx/nginx.conf":                  "nginx.conf",
		"/etc/nginx/conf.d/upmedic.conf":         "upmedic.conf",
		"/etc/nginx/snippets/upmedic-proxy.conf": "upmedic-proxy.conf",
	} {
		if mounted[ctr] != filepath.Join(repo, "testdata", "nginx", file) {
			t.Errorf("nginx mounts %q at %s, want testdata/nginx/%s", mounted[ctr], ctr, file)
		}
	}

	// upmedic listens where the snippet's upstream points, in nginx's
	// network namespace.
	if up.NetworkMode != "service:nginx" {
		t.Errorf("upmedic network_mode %q, want service:nginx", up.NetworkMode)
	}
	server := regexp.MustCompile(`(?m)^\s*server\s+(\S+);`).FindStringSubmatch(readFile(t, filepath.Join(repo, "testdata", "nginx", "upmedic.conf")))
	if server == nil || up.Environment["UPMEDIC_LISTEN"] != server[1] {
		t.Errorf("upmedic UPMEDIC_LISTEN=%q, the snippet's upstream server %q", up.Environment["UPMEDIC_LISTEN"], server)
	}

	// The socket: in a volume both mount at the same place, named in the
	// app's command, reachable through a group upmedic is in.
	sock, ok := strings.CutPrefix(up.Environment["UPMEDIC_UPSTREAM"], "unix:")
	if !ok {
		t.Fatalf("upmedic UPMEDIC_UPSTREAM=%q, want a unix socket", up.Environment["UPMEDIC_UPSTREAM"])
	}
	sharedVolume := func(volumes []string) string {
		for _, v := range volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == path.Dir(sock) {
				return parts[0]
			}
		}
		return ""
	}
	vol := sharedVolume(up.Volumes)
	if vol == "" || sharedVolume(app.Volumes) != vol {
		t.Errorf("upmedic and app do not mount one volume at %s: %q, %q", path.Dir(sock), up.Volumes, app.Volumes)
	}
	if _, ok := c.Volumes[vol]; !ok {
		t.Errorf("volume %q is not declared", vol)
	}
	var cmd strings.Builder
	for _, n := range append([]*yaml.Node{&app.Command}, app.Command.Content...) {
		cmd.WriteString(n.Value + " ")
	}
	if !strings.Contains(cmd.String(), "unix:"+sock) {
		t.Errorf("the app's command does not bind %s: %q", sock, cmd.String())
	}
	if m := regexp.MustCompile(`--group (\d+)`).FindStringSubmatch(cmd.String()); m == nil || len(up.GroupAdd) != 1 || up.GroupAdd[0] != m[1] {
		t.Errorf("the app's socket group %q and upmedic's group_add %q differ", m, up.GroupAdd)
	}
	if !up.ReadOnly || len(up.CapDrop) == 0 || up.CapDrop[0] != "ALL" {
		t.Errorf("upmedic: read_only %v, cap_drop %q; want true and ALL", up.ReadOnly, up.CapDrop)
	}
}

// pod is the part of a Kubernetes Pod the test reads.
type pod struct {
	Kind string
	Spec struct {
		SecurityContext struct {
			FSGroup *int64 `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Volumes []struct {
			Name     string
			EmptyDir *struct{} `yaml:"emptyDir"`
		}
		Containers []k8sContainer
	}
}

type k8sContainer struct {
	Name    string
	Image   string
	Command []string
	Env     []struct{ Name, Value string }
	Ports   []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	SecurityContext struct {
		RunAsNonRoot             bool  `yaml:"runAsNonRoot"`
		RunAsUser                int64 `yaml:"runAsUser"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string
		Port yaml.Node // a number or a port name
	} `yaml:"httpGet"`
}

func (c *k8sContainer) env(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// port resolves a probe's port, a number or a name.
func (c *k8sContainer) port(n yaml.Node) int {
	if p, err := strconv.Atoi(n.Value); err == nil {
		return p
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort
		}
	}
	return 0
}

// mountOf returns the volume mounted at dir.
func (c *k8sContainer) mountOf(dir string) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			return m.Name
		}
	}
	return ""
}

// TestK8sPodExample checks examples/k8s-pod.yaml: the probes ask upmedic's
// admin API where UPMEDIC_ADMIN_LISTEN puts it (/readyz for readiness,
// /healthz for liveness), upmedic runs as the image's user, and the app's
// socket is in an emptyDir both containers mount.
func TestK8sPodExample(t *testing.T) {
	repo, _ := dirs(t)
	var p pod
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(repo, "examples", "k8s-pod.yaml"))), &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "Pod" {
		t.Fatalf("kind %q, want Pod", p.Kind)
	}
	var up, app *k8sContainer
	for i := range p.Spec.Containers {
		switch c := &p.Spec.Containers[i]; c.Name {
		case "upmedic":
			up = c
		case "app":
			app = c
		}
	}
	if up == nil || app == nil {
		t.Fatal("want containers upmedic and app")
	}
	_, adminPort, _ := strings.Cut(up.env("UPMEDIC_ADMIN_LISTEN"), ":")
	for _, pr := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readinessProbe", up.ReadinessProbe, "/readyz"}, {"livenessProbe", up.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("upmedic has no %s.httpGet", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path || strconv.Itoa(up.port(pr.probe.HTTPGet.Port)) != adminPort {
			t.Errorf("%s asks %s on port %q (%d), want %s on UPMEDIC_ADMIN_LISTEN's port %s",
				pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port.Value, up.port(pr.probe.HTTPGet.Port), pr.path, adminPort)
		}
	}
	if _, port, _ := strings.Cut(up.env("UPMEDIC_LISTEN"), ":"); port != "8080" || up.port(yaml.Node{Value: "http"}) != 8080 {
		t.Errorf("UPMEDIC_LISTEN=%q and port http: want 8080 both", up.env("UPMEDIC_LISTEN"))
	}
	sc := up.SecurityContext
	if sc.RunAsUser != 65532 || !sc.RunAsNonRoot || !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("upmedic securityContext %+v: want runAsUser 65532 (the image's), non-root, read-only root, no privilege escalation", sc)
	}

	sock, ok := strings.CutPrefix(up.env("UPMEDIC_UPSTREAM"), "unix:")
	if !ok {
		t.Fatalf("UPMEDIC_UPSTREAM=%q, want a unix socket", up.env("UPMEDIC_UPSTREAM"))
	}
	vol := up.mountOf(path.Dir(sock))
	if vol == "" || app.mountOf(path.Dir(sock)) != vol {
		t.Errorf("upmedic and app do not mount one volume at %s", path.Dir(sock))
	}
	emptyDir := false
	for _, v := range p.Spec.Volumes {
		emptyDir = emptyDir || (v.Name == vol && v.EmptyDir != nil)
	}
	if !emptyDir {
		t.Errorf("volume %q is not an emptyDir of the pod", vol)
	}
	if !strings.Contains(strings.Join(app.Command, " "), "unix:"+sock) {
		t.Errorf("the app's command %q does not bind %s", app.Command, sock)
	}
	if p.Spec.SecurityContext.FSGroup == nil {
		t.Error("no pod fsGroup: upmedic (65532) would not be in the socket's group")
	}
}
