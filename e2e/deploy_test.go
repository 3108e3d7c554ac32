package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	// The group of upmedic's own unix socket, which nginx's workers must
	// join: the unit and the README name the same one.
	readme := readFile(t, filepath.Join(repo, "README.md"))
	if g := svc["Group"]; len(g) != 1 || g[0] == "" || !strings.Contains(readme, "Group="+g[0]) ||
		!strings.Contains(readme, "usermod -aG "+g[0]+" www-data") {
		t.Errorf("[Service] Group=%q: want one static group, the one README.md tells nginx's user to join", g)
	}
	if u := svc["UMask"]; len(u) != 1 || u[0] != "0077" {
		t.Errorf("[Service] UMask=%q, want 0077 (UPMEDIC_LISTEN_MODE sets the socket's mode whatever it is)", u)
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
		Image string
		Build *struct {
			Context, Dockerfile string
			DockerfileInline    string `yaml:"dockerfile_inline"`
		}
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

// readCompose reads examples/docker-compose.yml.
func readCompose(t *testing.T) compose {
	t.Helper()
	repo, _ := dirs(t)
	var c compose
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(repo, "examples", "docker-compose.yml"))), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// command returns a service's command as one string.
func (c *compose) command(service string) string {
	cmd := c.Services[service].Command
	var b strings.Builder
	for _, n := range append([]*yaml.Node{&cmd}, cmd.Content...) {
		b.WriteString(n.Value + " ")
	}
	return b.String()
}

// TestComposeExample checks examples/docker-compose.yml against the files it
// uses: nginx mounts the repository's own testdata/nginx files, with
// upmedic.conf over the image's conf.d/default.conf (whose server would
// otherwise be the default); upmedic shares nginx's network namespace and
// listens where the snippet's upstream points; upmedic and the app share the
// socket's volume and group; the app's image is built with gunicorn in it,
// nothing is installed when it starts.
func TestComposeExample(t *testing.T) {
	repo, _ := dirs(t)
	examples := filepath.Join(repo, "examples")
	c := readCompose(t)
	nginx, up, app := c.Services["nginx"], c.Services["upmedic"], c.Services["app"]
	if nginx.Image == "" || app.Build == nil || up.Build == nil {
		t.Fatalf("want services nginx (image), app (build) and upmedic (build); got %+v", c.Services)
	}
	if _, err := os.Stat(filepath.Join(examples, up.Build.Context, up.Build.Dockerfile)); err != nil {
		t.Errorf("upmedic's build: %v", err)
	}
	// The app: Debian's gunicorn installed at build time, the suite's WSGI
	// app copied in from the build context.
	if !strings.Contains(app.Build.DockerfileInline, "apt-get install -y --no-install-recommends gunicorn") {
		t.Errorf("the app's build does not install gunicorn:\n%s", app.Build.DockerfileInline)
	}
	for _, line := range strings.Split(app.Build.DockerfileInline, "\n") {
		if src, ok := strings.CutPrefix(strings.TrimSpace(line), "COPY "); ok {
			if _, err := os.Stat(filepath.Join(examples, app.Build.Context, strings.Fields(src)[0])); err != nil {
				t.Errorf("the app's build copies %q: %v", src, err)
			}
		}
	}
	if cmd := c.command("app"); strings.Contains(cmd, "pip") || strings.Contains(cmd, "apt-get") || !strings.HasPrefix(cmd, " gunicorn ") {
		t.Errorf("the app's command installs something or is not gunicorn: %q", cmd)
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
		"/etc/nginx/conf.d/default.conf":         "upmedic.conf",
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
	cmd := c.command("app")
	if !strings.Contains(cmd, "unix:"+sock) {
		t.Errorf("the app's command does not bind %s: %q", sock, cmd)
	}
	if m := regexp.MustCompile(`--group (\d+)`).FindStringSubmatch(cmd); m == nil || len(up.GroupAdd) != 1 || up.GroupAdd[0] != m[1] {
		t.Errorf("the app's socket group %q and upmedic's group_add %q differ", m, up.GroupAdd)
	}
	if !up.ReadOnly || len(up.CapDrop) == 0 || up.CapDrop[0] != "ALL" {
		t.Errorf("upmedic: read_only %v, cap_drop %q; want true and ALL", up.ReadOnly, up.CapDrop)
	}
}

// podSpec is the part of a Kubernetes pod spec the tests read.
type podSpec struct {
	TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		FSGroup *int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Volumes []struct {
		Name     string
		EmptyDir *struct{} `yaml:"emptyDir"`
	}
	Containers []k8sContainer
}

// k8sObject is the part of a Deployment or a Service the tests read.
type k8sObject struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		// Deployment
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     podSpec
		}
		// Service (its selector is a plain map: read it from the node)
		Ports []struct {
			Name       string
			Port       int
			TargetPort yaml.Node `yaml:"targetPort"`
		}
	}
	raw yaml.Node
}

// readK8s reads the documents of examples/k8s.yaml by kind.
func readK8s(t *testing.T) map[string]*k8sObject {
	t.Helper()
	repo, _ := dirs(t)
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, filepath.Join(repo, "examples", "k8s.yaml"))))
	out := map[string]*k8sObject{}
	for {
		var node yaml.Node
		if err := dec.Decode(&node); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		o := &k8sObject{raw: node}
		if err := node.Decode(o); err != nil {
			t.Fatal(err)
		}
		if out[o.Kind] != nil {
			t.Fatalf("two %s documents", o.Kind)
		}
		out[o.Kind] = o
	}
	return out
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

// TestK8sExample checks examples/k8s.yaml: a Deployment and a Service that
// selects its pods and targets upmedic's port; in the pod, the probes ask
// upmedic's admin API where UPMEDIC_ADMIN_LISTEN puts it (/readyz for
// readiness, /healthz for liveness), upmedic runs as the image's user, the
// app's socket is in an emptyDir both containers mount, and the grace
// period outlasts upmedic's drain (UPMEDIC_SHUTDOWN_TIMEOUT).
func TestK8sExample(t *testing.T) {
	objs := readK8s(t)
	dep, svc := objs["Deployment"], objs["Service"]
	if dep == nil || svc == nil || len(objs) != 2 {
		t.Fatalf("want a Deployment and a Service, got %v", slices.Collect(maps.Keys(objs)))
	}
	labels := dep.Spec.Template.Metadata.Labels
	for k, v := range dep.Spec.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not match its pods' labels %v", k, v, labels)
		}
	}
	var svcSpec struct {
		Spec struct{ Selector map[string]string }
	}
	if err := svc.raw.Decode(&svcSpec); err != nil {
		t.Fatal(err)
	}
	if len(svcSpec.Spec.Selector) == 0 {
		t.Error("the Service selects nothing")
	}
	for k, v := range svcSpec.Spec.Selector {
		if labels[k] != v {
			t.Errorf("the Service's selector %s=%s does not match the pods' labels %v", k, v, labels)
		}
	}

	p := dep.Spec.Template.Spec
	var up, app *k8sContainer
	for i := range p.Containers {
		switch c := &p.Containers[i]; c.Name {
		case "upmedic":
			up = c
		case "app":
			app = c
		}
	}
	if up == nil || app == nil {
		t.Fatal("want containers upmedic and app")
	}
	if len(svc.Spec.Ports) != 1 || up.port(svc.Spec.Ports[0].TargetPort) != up.port(yaml.Node{Value: "http"}) {
		t.Errorf("the Service's ports %+v: want one, targeting upmedic's http port", svc.Spec.Ports)
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
	for _, v := range p.Volumes {
		emptyDir = emptyDir || (v.Name == vol && v.EmptyDir != nil)
	}
	if !emptyDir {
		t.Errorf("volume %q is not an emptyDir of the pod", vol)
	}
	if !strings.Contains(strings.Join(app.Command, " "), "unix:"+sock) {
		t.Errorf("the app's command %q does not bind %s", app.Command, sock)
	}
	if p.SecurityContext.FSGroup == nil {
		t.Error("no pod fsGroup: upmedic (65532) would not be in the socket's group")
	}

	// The drain: the grace period must outlast UPMEDIC_SHUTDOWN_TIMEOUT (the
	// pod's, or the binary's default), or SIGKILL cuts it.
	drain := durationIn(t, up.env("UPMEDIC_SHUTDOWN_TIMEOUT"), upmedicDefault(t, "UPMEDIC_SHUTDOWN_TIMEOUT"))
	if g := p.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %v, want over UPMEDIC_SHUTDOWN_TIMEOUT %v (Kubernetes' default is 30s)", g, drain)
	}
}
