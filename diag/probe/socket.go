package probe

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/upmedic/upmedic/diag"
)

// fileFacts are the ownership and mode of one path, for permission checks.
type fileFacts struct {
	path  string
	mode  fs.FileMode
	owner ID
	group ID
	known bool // owner and group are known (unix)
}

func statFacts(path string, fi fs.FileInfo) fileFacts {
	f := fileFacts{path: path, mode: fi.Mode()}
	if uid, gid, ok := fileOwner(fi); ok {
		f.owner, f.group, f.known = userID(uid), groupID(gid), true
	}
	return f
}

// String returns "owner 0(root), group 0(root), mode 0600 (srw-------)".
func (f fileFacts) String() string {
	s := fmt.Sprintf("mode %04o (%s)", unixMode(f.mode), lsMode(f.mode))
	if f.known {
		s = "owner " + f.owner.String() + ", group " + f.group.String() + ", " + s
	}
	return s
}

// permClass is which of the owner, group and other permission triplets
// applies to the probe's identity.
type permClass uint8

const (
	classOwner permClass = iota
	classGroup
	classOther
)

var permClassNames = [...]string{"owner", "group", "other"}

func (f fileFacts) classFor(id *Identity) permClass {
	switch {
	case f.owner.ID == id.User.ID:
		return classOwner
	case id.inGroup(f.group.ID):
		return classGroup
	default:
		return classOther
	}
}

// allows reports whether id has the permission bit want (4 r, 2 w, 1 x) on
// f, by the mode bits alone (no ACLs). Root is allowed everything.
func (f fileFacts) allows(id *Identity, want fs.FileMode) bool {
	if id.isRoot() || !f.known {
		return true
	}
	return f.triplet(f.classFor(id))&want != 0
}

// triplet returns the rwx bits of class c, shifted to the low three bits.
func (f fileFacts) triplet(c permClass) fs.FileMode {
	return (f.mode.Perm() >> (3 * (2 - fs.FileMode(c)))) & 7
}

// unixMode returns m's permission bits as chmod takes them, with setuid,
// setgid and sticky.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// lsMode returns m as ls -l prints it: "srw-rw----", "drwxrwxrwt".
func lsMode(m fs.FileMode) string {
	b := []byte("-rwxrwxrwx")
	switch {
	case m&fs.ModeDir != 0:
		b[0] = 'd'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(set bool, i int, on, off byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = on
		} else {
			b[i] = off
		}
	}
	special(m&fs.ModeSetuid != 0, 3, 's', 'S')
	special(m&fs.ModeSetgid != 0, 6, 's', 'S')
	special(m&fs.ModeSticky != 0, 9, 't', 'T')
	return string(b)
}

func rwx(bits fs.FileMode) string {
	b := []byte("---")
	if bits&4 != 0 {
		b[0] = 'r'
	}
	if bits&2 != 0 {
		b[1] = 'w'
	}
	if bits&1 != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// describeSocket returns the socket's ownership and mode, or "" when it
// cannot be read (an abstract socket, a vanished file).
func (p *prober) describeSocket() string {
	if strings.HasPrefix(p.s.Address, "@") {
		return ""
	}
	fi, err := os.Stat(p.s.Address)
	if err != nil {
		return ""
	}
	return "socket " + p.s.Address + ": " + statFacts(p.s.Address, fi).String()
}

// ancestors returns the directories that lead to path, outermost first:
// "/", "/run", "/run/app" for "/run/app/app.sock".
func ancestors(path string) []string {
	path = filepath.Clean(path)
	var dirs []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// underTmp reports whether path lives in a directory that systemd's
// PrivateTmp replaces per service.
func underTmp(path string) bool {
	path = filepath.Clean(path)
	return path == "/tmp" || path == "/var/tmp" ||
		strings.HasPrefix(path, "/tmp/") || strings.HasPrefix(path, "/var/tmp/")
}

// appSocketSettings is where common app servers set their socket path.
const appSocketSettings = "gunicorn --bind unix:PATH, php-fpm listen = PATH, uwsgi --http-socket PATH"

func (p *prober) explainMissing(errno string) {
	path := p.s.Address
	f := Finding{Cause: diag.SocketNotFound, Severity: SeverityFail}
	if strings.HasPrefix(path, "@") {
		f.Title = "no abstract socket " + path + " (" + errno + ")"
		f.Details = []string{"abstract sockets live in the network namespace: the app must run in the same one"}
		f.Fix = []string{"start the app, or make UPMEDIC_UPSTREAM match the name it binds"}
		p.r.add(f)
		return
	}

	// Find the first missing (or non-directory) component.
	missing, deepest := path, ""
	for _, d := range ancestors(path) {
		fi, err := os.Stat(d)
		if err != nil {
			missing = d
			break
		}
		if !fi.IsDir() {
			f.Title = d + " is not a directory, so " + path + " cannot exist (" + errno + ")"
			f.Details = []string{d + ": " + statFacts(d, fi).String()}
			f.Fix = []string{"make UPMEDIC_UPSTREAM and the app's socket path agree (" + strings.ReplaceAll(appSocketSettings, "PATH", path) + ")"}
			p.r.add(f)
			return
		}
		deepest = d
	}
	if missing == path {
		f.Title = "socket " + path + " does not exist (" + errno + ")"
	} else {
		f.Title = "directory " + missing + " does not exist, so neither does " + path + " (" + errno + ")"
	}
	if deepest != "" {
		if fi, err := os.Stat(deepest); err == nil {
			f.Details = append(f.Details, "deepest existing directory: "+deepest+" ("+statFacts(deepest, fi).String()+")")
		}
		if others := socketsIn(deepest, 5); len(others) > 0 {
			f.Details = append(f.Details, "sockets that do exist there: "+strings.Join(others, ", "))
		}
	}
	f.Details = append(f.Details, "the app has not started (or failed to), or the app and upmedic use different paths")
	f.Fix = []string{
		"start the app and check its log; it creates the socket when it starts listening",
		"make UPMEDIC_UPSTREAM and the app's socket path agree (" + strings.ReplaceAll(appSocketSettings, "PATH", path) + ")",
	}
	if underTmp(path) {
		f.Details = append(f.Details,
			"the path is under /tmp or /var/tmp: a systemd service with PrivateTmp=yes gets its own private /tmp, so a socket the app creates there is invisible to upmedic (and to this probe)")
		f.Fix = append(f.Fix,
			"move the socket out of /tmp: e.g. /run/app/app.sock, with RuntimeDirectory=app in the app's unit (check: systemctl show -p PrivateTmp <app>)")
	}
	p.r.add(f)
}

// socketsIn lists up to max unix sockets in dir, by full path.
func socketsIn(dir string, max int) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type()&fs.ModeSocket != 0 {
			out = append(out, filepath.Join(dir, e.Name()))
			if len(out) == max {
				break
			}
		}
	}
	return out
}

func (p *prober) explainRefusedSocket(errno string) {
	path := p.s.Address
	if strings.HasPrefix(path, "@") {
		p.r.add(Finding{Cause: diag.ConnectionRefused, Severity: SeverityFail,
			Title: "nothing listens on abstract socket " + path + " (" + errno + ")",
			Fix:   []string{"start or restart the app and check its log"}})
		return
	}
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&fs.ModeSocket == 0 {
		kind := "a regular file"
		switch {
		case fi.IsDir():
			kind = "a directory"
		case fi.Mode()&fs.ModeSymlink != 0:
			kind = "a symbolic link to something that is not a listening socket"
		case fi.Mode()&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		}
		p.r.add(Finding{Cause: diag.ConnectionRefused, Severity: SeverityFail,
			Title: path + " is " + kind + ", not a socket",
			Details: []string{
				"connecting to it is refused (" + errno + ")",
				path + ": " + statFacts(path, fi).String(),
				"a file at the socket path also stops the app from creating its socket there (EADDRINUSE)",
			},
			Fix: []string{
				"make UPMEDIC_UPSTREAM name the socket the app creates (" + strings.ReplaceAll(appSocketSettings, "PATH", path) + ")",
				"if the path is right, remove what is there and restart the app: rm " + path,
			}})
		return
	}
	f := Finding{Cause: diag.ConnectionRefused, Severity: SeverityFail,
		Title: "stale socket: " + path + " exists but nothing listens on it (" + errno + ")",
		Details: []string{
			"the app that created it died, was stopped, or is restarting; the file stays until the app removes or recreates it",
		},
		Fix: []string{
			"start or restart the app and check its log (systemctl status <app>; journalctl -u <app>)",
			"see which process listens on it, if any: ss -xlp | grep " + path,
			"if the app is only restarting, UPMEDIC_HOLD=5s holds requests through the gap",
		}}
	if err == nil {
		f.Details = append(f.Details, "socket "+path+": "+statFacts(path, fi).String())
	}
	p.r.add(f)
}

// explainPermission walks from / to the socket and names the first path the
// probe's identity may not pass: a directory without search (x) permission
// or a socket without write (w) permission.
func (p *prober) explainPermission(cause diag.Cause, errno string) {
	path := p.s.Address
	id := p.id
	who := id.User.label()
	for _, d := range ancestors(path) {
		fi, err := os.Stat(d)
		if err != nil {
			break // cannot look further; fall through to the generic finding
		}
		facts := statFacts(d, fi)
		if facts.allows(id, 1) {
			continue
		}
		c := facts.classFor(id)
		f := Finding{Cause: cause, Severity: SeverityFail,
			Title: fmt.Sprintf("%s may not search directory %s, so it cannot reach %s (%s)", who, d, path, errno),
			Details: []string{
				"directory " + d + ": " + facts.String(),
				"the probe runs as " + id.String(),
				whyClass(c, facts, id) + ", so the " + permClassNames[c] + " bits apply: " + rwx(facts.triplet(c)) + " (reaching a socket needs x on every directory above it)",
			}}
		switch c {
		case classOwner:
			f.Fix = []string{"chmod u+x " + d}
		case classGroup:
			f.Fix = []string{"chmod g+x " + d}
		default:
			f.Fix = []string{
				"let everyone pass through (x lets them reach names they know, not list the directory): chmod o+x " + d,
				"or share the directory's group: chgrp " + sharedGroup(facts.group) + " " + d + " && chmod g+x " + d + ", then usermod -aG " + sharedGroup(facts.group) + " " + who + " and restart upmedic",
			}
		}
		if strings.HasPrefix(d, "/run/") {
			f.Fix = append(f.Fix, "if systemd creates it (RuntimeDirectory=), set RuntimeDirectoryMode=0755, or 0750 with a Group= upmedic is in")
		}
		p.r.add(f)
		return
	}

	fi, err := os.Stat(path)
	if err == nil {
		facts := statFacts(path, fi)
		if !facts.allows(id, 2) {
			p.r.add(p.socketPermissionFinding(cause, errno, facts))
			return
		}
	}

	// The mode bits allow it: something else denies.
	f := Finding{Cause: cause, Severity: SeverityFail,
		Title: fmt.Sprintf("%s may not connect to %s (%s), although the file modes allow it", who, path, errno),
		Details: []string{
			"the probe runs as " + id.String(),
		},
		Fix: []string{
			"check ACLs on the socket and its directories: getfacl " + path,
			"check AppArmor (aa-status; dmesg | grep DENIED) and seccomp or systemd sandboxing in upmedic's unit (systemctl cat upmedic)",
		}}
	if err == nil {
		f.Details = append(f.Details, "socket "+path+": "+statFacts(path, fi).String())
	}
	if se := readSELinux(p.s.SELinuxRoot); se.enforcing {
		f.Details = append(f.Details, "SELinux is enforcing ("+se.enforcePath+" = 1): the socket's label may not allow upmedic's domain to connect")
		f.Fix = append([]string{"find the denial: ausearch -m avc -ts recent | grep connectto"}, f.Fix...)
	}
	p.r.add(f)
}

// socketPermissionFinding explains a socket the identity may not write to.
func (p *prober) socketPermissionFinding(cause diag.Cause, errno string, facts fileFacts) Finding {
	path := facts.path
	id := p.id
	who := id.User.label()
	c := facts.classFor(id)
	f := Finding{Cause: cause, Severity: SeverityFail,
		Title: fmt.Sprintf("%s may not connect to %s: no write permission on the socket (%s)", who, path, errno),
		Details: []string{
			"socket " + path + ": " + facts.String(),
			"the probe runs as " + id.String(),
			whyClass(c, facts, id) + ", so the " + permClassNames[c] + " bits apply: " + rwx(facts.triplet(c)) + " (connecting needs w)",
		}}
	owner, group := facts.owner.label(), sharedGroup(facts.group)
	fpmOwner := "listen.owner = " + owner + ", "
	if facts.owner.ID == 0 {
		fpmOwner = "" // php-fpm defaults the owner to the pool's user; never suggest root
	}
	appSide := []string{
		"  php-fpm pool: " + fpmOwner + "listen.group = " + group + ", listen.mode = 0660",
		"  gunicorn: --group " + group + " --umask 007 (the socket becomes 0770)",
	}
	restart := "usermod -aG " + group + " " + who + ", then restart what runs as " + who + ", upmedic or nginx (groups are read when a process starts)"
	switch {
	case c == classOwner:
		f.Fix = append([]string{"make the socket writable by its owner where the app creates it:"}, appSide...)
		f.Fix = append(f.Fix, "quick test, undone when the app restarts: chmod u+w "+path)
	case c == classGroup:
		f.Fix = append([]string{"make the socket group-writable where the app creates it:"}, appSide...)
		f.Fix = append(f.Fix, "quick test, undone when the app restarts: chmod g+w "+path)
	case facts.triplet(classGroup)&2 != 0 && facts.group.ID != 0:
		f.Fix = []string{
			"the socket's group " + facts.group.String() + " may write to it: add " + who + " to that group:",
			"  " + restart,
		}
	default:
		f.Fix = append([]string{"give the socket a group that " + who + " shares with the app, and make it group-writable:"}, appSide...)
		f.Fix = append(f.Fix, "  "+restart)
	}
	if facts.owner.ID != 0 {
		f.Fix = append(f.Fix, "or run upmedic as "+owner+" (User= in its systemd unit)")
	}
	return f
}

// sharedGroup names the group to share in a fix: the file's group, unless that
// is root's, which nobody should be added to.
func sharedGroup(g ID) string {
	if g.ID == 0 {
		return "<shared-group>"
	}
	return g.label()
}

func whyClass(c permClass, f fileFacts, id *Identity) string {
	who := id.User.label()
	switch c {
	case classOwner:
		return who + " is the owner"
	case classGroup:
		return who + " is not the owner but is in group " + f.group.String()
	default:
		return who + " is neither the owner " + f.owner.String() + " nor in group " + f.group.String()
	}
}
