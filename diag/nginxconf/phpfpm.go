package nginxconf

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
	"time"
)

// pool is what the checker needs of one php-fpm pool: where it listens and
// when php-fpm kills a request (request_terminate_timeout).
type pool struct {
	name    string
	listen  endpoint
	timeout time.Duration // 0: never
	// file and line are where request_terminate_timeout is set.
	file string
	line int
}

// poolSetting is one "key = value" line of a php-fpm configuration.
type poolSetting struct {
	section, key, value string
	line                int
}

// parsePHPFPM reads a php-fpm configuration file (php-fpm.conf or a pool
// file): INI sections ([global], [www]), "key = value" lines with ; or #
// comments, values optionally in double quotes. It returns the settings in
// order and the include patterns of the [global] section. Lines it does not
// understand are skipped, as php-fpm would reject them itself.
func parsePHPFPM(src []byte) (settings []poolSetting, includes []string) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	section := "global"
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			if end := strings.IndexByte(line, ']'); end > 1 {
				section = strings.TrimSpace(line[1:end])
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		if q, ok := strings.CutPrefix(value, `"`); ok {
			value, _, _ = strings.Cut(q, `"`)
		} else if i := strings.Index(value, " ;"); i >= 0 {
			value = strings.TrimSpace(value[:i])
		}
		if key == "" {
			continue
		}
		if key == "include" && section == "global" {
			includes = append(includes, value)
			continue
		}
		settings = append(settings, poolSetting{section: section, key: key, value: value, line: n})
	}
	return settings, includes
}

// parseFPMTime reads a php-fpm time value: a number with an optional unit
// s, m, h or d; no unit is seconds.
func parseFPMTime(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	unit := time.Second
	switch s[len(s)-1] {
	case 's':
		s = s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	}
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	d, _ := parseTime(s)
	return d / time.Second * unit, true
}

// readPools reads the php-fpm configuration files the patterns match, and
// the files their [global] include lines name, and returns every pool that
// has a listen address. Files that cannot be read are left out: php-fpm's
// configuration is an optional second opinion.
func readPools(patterns []string) []pool {
	byName := map[string]*pool{}
	var order []string
	seen := map[string]bool{}
	var read func(file string, depth int)
	read = func(file string, depth int) {
		if seen[file] || depth > 4 || len(seen) >= maxFiles {
			return
		}
		seen[file] = true
		src, err := readFile(file)
		if err != nil {
			return
		}
		settings, includes := parsePHPFPM(src)
		for _, s := range settings {
			if s.section == "global" || s.section == "" {
				continue
			}
			p := byName[s.section]
			if p == nil {
				p = &pool{name: s.section}
				byName[s.section] = p
				order = append(order, s.section)
			}
			value := strings.ReplaceAll(s.value, "$pool", s.section)
			switch s.key {
			case "listen":
				if e, ok := parseAddress(value, "9000"); ok {
					p.listen = e
				}
			case "request_terminate_timeout":
				if d, ok := parseFPMTime(value); ok {
					p.timeout, p.file, p.line = d, file, s.line
				}
			}
		}
		for _, inc := range includes {
			if !filepath.IsAbs(inc) {
				inc = filepath.Join(filepath.Dir(file), inc)
			}
			files, _ := filepath.Glob(inc)
			for _, f := range files {
				read(f, depth+1)
			}
		}
	}
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			read(f, 0)
		}
	}
	var pools []pool
	for _, name := range order {
		if p := byName[name]; p.listen.valid() {
			pools = append(pools, *p)
		}
	}
	return pools
}
