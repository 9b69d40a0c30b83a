package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pubpresence/pubpresence/config"
)

// root is the module root, which is also the image's build context.
const root = "../.."

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, COPY, RUN, …
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	name  string // after AS; "" when unnamed
	image string
	instr []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows what this
// project's Dockerfile uses: comments, backslash continuations, no parser
// directives other than the default escape character.
func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var (
		stages []stage
		cur    strings.Builder
		start  int
	)
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:] // --platform=…
			}
			st := stage{}
			switch {
			case len(f) == 1:
				st.image = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.image, st.name = f[0], f[2]
			default:
				t.Fatalf("Dockerfile:%d: cannot read FROM %s", in.line, in.args)
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

// copyInstr is a COPY or ADD.
type copyInstr struct {
	from string   // --from=; "" for the build context
	srcs []string // relative to the context or to the --from stage's root
	dest string
}

func parseCopy(t *testing.T, in instruction) copyInstr {
	t.Helper()
	var c copyInstr
	rest := in.args
	for strings.HasPrefix(rest, "--") {
		flag, r, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(r)
		if v, ok := strings.CutPrefix(flag, "--from="); ok {
			c.from = v
		}
	}
	var paths []string
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &paths); err != nil {
			t.Fatalf("Dockerfile:%d: %s %s: %v", in.line, in.cmd, rest, err)
		}
	} else {
		paths = strings.Fields(rest)
	}
	if len(paths) < 2 {
		t.Fatalf("Dockerfile:%d: %s needs a source and a destination", in.line, in.cmd)
	}
	c.srcs, c.dest = paths[:len(paths)-1], paths[len(paths)-1]
	return c
}

// execForm parses the JSON (exec) form of ENTRYPOINT or CMD.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Errorf("Dockerfile:%d: %s %s is not a non-empty JSON array (exec form): %v", in.line, in.cmd, in.args, err)
	}
	return argv
}

// shellWords splits a shell command line into words, honouring single and
// double quotes and backslash escapes. It does not expand anything.
func shellWords(s string) []string {
	var (
		words []string
		w     strings.Builder
		in    bool // inside a word
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == '\'':
			w.WriteRune(r)
		case r == '\\' && i+1 < len(rs):
			i++
			w.WriteRune(rs[i])
			in = true
		case quote == '"':
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// goBuild is the `go build` command of a RUN instruction.
type goBuild struct {
	line int
	env  []string // VAR=value assignments before `go`, unexpanded
	args []string // after `go build`, unexpanded
	out  string   // the -o value
	pkg  string   // the last argument
}

// findGoBuild returns the go build command of stage st.
func findGoBuild(t *testing.T, st stage) goBuild {
	t.Helper()
	for _, in := range st.instr {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words := shellWords(in.args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			words = words[1:] // --mount=…
		}
		// The simple command that holds `go build`: split on && and ;.
		var cmd []string
		for _, w := range words {
			if w == "&&" || w == ";" || w == "||" {
				if slices.Contains(cmd, "build") {
					break
				}
				cmd = nil
				continue
			}
			cmd = append(cmd, w)
		}
		gb := goBuild{line: in.line}
		i := 0
		for ; i < len(cmd) && strings.Contains(cmd[i], "=") && cmd[i] != "go"; i++ {
			gb.env = append(gb.env, cmd[i])
		}
		if i+1 >= len(cmd) || cmd[i] != "go" || cmd[i+1] != "build" {
			t.Fatalf("Dockerfile:%d: cannot find `[VAR=value …] go build` in %q", in.line, in.args)
		}
		gb.args = cmd[i+2:]
		for j, a := range gb.args {
			if a == "-o" && j+1 < len(gb.args) {
				gb.out = gb.args[j+1]
			}
		}
		if len(gb.args) > 0 {
			gb.pkg = gb.args[len(gb.args)-1]
		}
		return gb
	}
	t.Fatalf("stage %q has no RUN … go build", st.name)
	return goBuild{}
}

// argDefaults returns the ARG defaults declared in st.
func argDefaults(st stage) map[string]string {
	args := make(map[string]string)
	for _, in := range st.instr {
		if in.cmd != "ARG" {
			continue
		}
		for _, a := range strings.Fields(in.args) {
			k, v, _ := strings.Cut(a, "=")
			args[k] = v
		}
	}
	return args
}

type dockerfile struct {
	stages []stage
	final  stage
	build  stage // the stage with the go build
	gb     goBuild
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	df.stages = parseDockerfile(t, string(b))
	if len(df.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(df.stages))
	}
	df.final = df.stages[len(df.stages)-1]
	for _, st := range df.stages[:len(df.stages)-1] {
		if slices.ContainsFunc(st.instr, func(in instruction) bool {
			return in.cmd == "RUN" && strings.Contains(in.args, "go build")
		}) {
			df.build = st
		}
	}
	df.gb = findGoBuild(t, df.build)
	return df
}

// TestDockerfile checks the Dockerfile against the repository: stages, COPY
// sources, the build command, the final stage's user, entry point and
// configuration.
func TestDockerfile(t *testing.T) {
	df := readDockerfile(t)

	names := make(map[string]bool)
	for _, st := range df.stages {
		if st.name != "" {
			if names[st.name] {
				t.Errorf("stage name %q used twice", st.name)
			}
			names[st.name] = true
		}
		for _, in := range st.instr {
			if in.cmd != "COPY" && in.cmd != "ADD" {
				continue
			}
			c := parseCopy(t, in)
			if c.from != "" {
				if !names[c.from] || c.from == st.name {
					t.Errorf("Dockerfile:%d: --from=%s is not an earlier stage", in.line, c.from)
				}
				continue
			}
			for _, src := range c.srcs {
				m, err := filepath.Glob(filepath.Join(root, src))
				if err != nil || len(m) == 0 {
					t.Errorf("Dockerfile:%d: %s %s: no such file in the build context", in.line, in.cmd, src)
				}
			}
		}
	}

	// The build stage: a Go image no older than go.mod's go directive.
	if !strings.HasPrefix(df.build.image, "golang:") {
		t.Errorf("build stage image %s, want golang:…", df.build.image)
	} else if err := checkGoVersion(df.build.image); err != "" {
		t.Error(err)
	}

	// The build command: static, and the command's package exists.
	gb := df.gb
	if !slices.Contains(gb.env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile:%d: go build without CGO_ENABLED=0 (env %q)", gb.line, gb.env)
	}
	if gb.pkg != "./cmd/pubpresence" {
		t.Errorf("Dockerfile:%d: go build builds %q, want ./cmd/pubpresence", gb.line, gb.pkg)
	}
	if _, err := os.Stat(filepath.Join(root, gb.pkg, "main.go")); err != nil {
		t.Errorf("Dockerfile:%d: %v", gb.line, err)
	}
	if gb.out == "" {
		t.Errorf("Dockerfile:%d: go build without -o", gb.line)
	}
	if !slices.ContainsFunc(gb.args, func(a string) bool { return strings.Contains(a, "-X main.version=") }) {
		t.Errorf("Dockerfile:%d: go build does not set main.version", gb.line)
	}

	// The final stage.
	var user, entry, cmdIn *instruction
	copies := make(map[string]copyInstr) // by destination
	for i, in := range df.final.instr {
		switch in.cmd {
		case "USER":
			user = &df.final.instr[i]
		case "ENTRYPOINT":
			entry = &df.final.instr[i]
		case "CMD":
			cmdIn = &df.final.instr[i]
		case "COPY", "ADD":
			c := parseCopy(t, in)
			copies[c.dest] = c
		}
	}
	if user == nil {
		t.Error("final stage has no USER: it would run as root")
	} else if u, _, _ := strings.Cut(user.args, ":"); u == "root" || u == "0" || u == "" {
		t.Errorf("Dockerfile:%d: USER %s is root", user.line, user.args)
	} else if _, err := strconv.Atoi(u); err != nil {
		t.Errorf("Dockerfile:%d: USER %s is not numeric: Kubernetes' runAsNonRoot cannot verify it", user.line, user.args)
	}
	if entry == nil {
		t.Fatal("final stage has no ENTRYPOINT")
	}
	argv := execForm(t, *entry)
	if len(argv) > 0 {
		c, ok := copies[argv[0]]
		if !ok || c.from != df.build.name || len(c.srcs) != 1 || c.srcs[0] != gb.out {
			t.Errorf("ENTRYPOINT %s is not the binary built by go build -o %s, copied --from=%s", argv[0], gb.out, df.build.name)
		}
	}
	if cmdIn == nil {
		t.Fatal("final stage has no CMD")
	}
	cmdArgs := execForm(t, *cmdIn)
	i := slices.Index(cmdArgs, "--config")
	if i < 0 || i+1 >= len(cmdArgs) {
		t.Fatalf("CMD %v has no --config FILE", cmdArgs)
	}
	c, ok := copies[cmdArgs[i+1]]
	if !ok || c.from != "" || len(c.srcs) != 1 {
		t.Fatalf("CMD's --config %s is not a file copied from the build context", cmdArgs[i+1])
	}
	t.Setenv("PUBPRESENCE_XMPP_SECRET", "")
	cfg, err := config.Load(filepath.Join(root, c.srcs[0]))
	if err != nil {
		t.Fatalf("the image's configuration %s: %v", c.srcs[0], err)
	}
	// EXPOSE names the port of the configuration's listener.
	if _, port, err := net.SplitHostPort(cfg.HTTP.Listen); err != nil {
		t.Errorf("[http] listen %q: %v", cfg.HTTP.Listen, err)
	} else if !slices.ContainsFunc(df.final.instr, func(in instruction) bool {
		return in.cmd == "EXPOSE" && slices.ContainsFunc(strings.Fields(in.args), func(p string) bool {
			return strings.TrimSuffix(p, "/tcp") == port
		})
	}) {
		t.Errorf("final stage does not EXPOSE %s, the port of [http] listen", port)
	}
}

var goDirectiveRE = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`)
var goImageRE = regexp.MustCompile(`^golang:(\d+)\.(\d+)(?:\.(\d+))?(?:[-@].*)?$`)

// checkGoVersion reports a golang image older than go.mod's go directive.
func checkGoVersion(image string) string {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err.Error()
	}
	mod, img := goDirectiveRE.FindStringSubmatch(string(b)), goImageRE.FindStringSubmatch(image)
	if mod == nil || img == nil {
		return "cannot compare the Go version of " + image + " with go.mod's go directive"
	}
	for k := 1; k <= 3; k++ {
		if img[k] == "" { // golang:1.26 is the newest 1.26.x
			return ""
		}
		a, _ := strconv.Atoi(img[k])
		b, _ := strconv.Atoi(mod[k])
		if a != b {
			if a < b {
				return image + " is older than go.mod's go " + strings.Join(slices.DeleteFunc(mod[1:], func(s string) bool { return s == "" }), ".")
			}
			return ""
		}
	}
	return ""
}

// dockerignore is the list of patterns of .dockerignore, in order.
type dockerignore []struct {
	re     *regexp.Regexp
	except bool // a !pattern
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var di dockerignore
	for _, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		except := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
		di = append(di, struct {
			re     *regexp.Regexp
			except bool
		}{ignoreRE(p), except})
	}
	return di
}

// ignoreRE translates a .dockerignore pattern (filepath.Match syntax plus
// **) into an anchored regular expression.
func ignoreRE(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// excluded reports whether path (slash-separated, relative to the context)
// is left out of the build context: the last pattern matching it or one of
// its parent directories decides.
func (di dockerignore) excluded(path string) bool {
	parts := strings.Split(path, "/")
	out := false
	for _, p := range di {
		for i := 1; i <= len(parts); i++ {
			if p.re.MatchString(strings.Join(parts[:i], "/")) {
				out = !p.except
				break
			}
		}
	}
	return out
}

func TestDockerignorePatterns(t *testing.T) {
	di := dockerignore{
		{ignoreRE(".git"), false},
		{ignoreRE("**/*.test"), false},
		{ignoreRE("*.md"), false},
		{ignoreRE("docs"), false},
		{ignoreRE("docs/keep.md"), true},
	}
	for path, want := range map[string]bool{
		".git/HEAD":                  true,
		"presence/presence.test":     true,
		"pubpresence.test":           true,
		"README.md":                  true,
		"docs/metrics.md":            true,
		"docs/keep.md":               false,
		"presence/README.md":         false, // *.md is for the root only
		"cmd/pubpresence/main.go":    false,
		"config.example.toml":        false,
		"cmd/pubpresence/test/x.go":  false,
		"cmd/pubpresence/x.testdata": false,
	} {
		if got := di.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestDockerignore checks that .dockerignore keeps every file the build
// uses: the COPY sources, and for a COPY of the whole context, go.mod,
// go.sum and the files of every package of the module that the command
// imports.
func TestDockerignore(t *testing.T) {
	df := readDockerfile(t)
	di := readDockerignore(t)
	need := []string{"go.mod", "go.sum"}
	wholeContext := false
	for _, st := range df.stages {
		for _, in := range st.instr {
			if in.cmd != "COPY" && in.cmd != "ADD" {
				continue
			}
			c := parseCopy(t, in)
			if c.from != "" {
				continue
			}
			for _, src := range c.srcs {
				src = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(src)), "/")
				if src == "." {
					wholeContext = true
					continue
				}
				need = append(need, src)
			}
		}
	}
	if wholeContext {
		gocmd, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go command:", err)
		}
		list := exec.Command(gocmd, "list", "-deps", "-f",
			`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
			"./cmd/pubpresence")
		list.Dir = root
		list.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		out, err := list.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		abs, err := filepath.Abs(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			dir, err := filepath.Rel(abs, f[0])
			if err != nil {
				t.Fatal(err)
			}
			for _, file := range f[1:] {
				need = append(need, filepath.ToSlash(filepath.Join(dir, file)))
			}
		}
		if !slices.Contains(need, "cmd/pubpresence/main.go") {
			t.Errorf("go list did not list cmd/pubpresence/main.go: %q", need)
		}
	}
	slices.Sort(need)
	for _, p := range slices.Compact(need) {
		if di.excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}

// TestDockerStaticBinary runs the Dockerfile's go build command and checks
// that the binary is statically linked, stripped and knows its version.
func TestDockerStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is Linux; this host cannot run the binary")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	df := readDockerfile(t)
	gb := df.gb
	vars := argDefaults(df.build)
	const testVersion = "v0.0.0-dockerfile-test"
	vars["VERSION"] = testVersion
	vars["TARGETOS"] = runtime.GOOS
	vars["TARGETARCH"] = runtime.GOARCH
	expand := func(s string) string {
		return os.Expand(s, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Errorf("Dockerfile:%d: $%s is not an ARG of the build stage", gb.line, k)
			}
			return v
		})
	}
	bin := filepath.Join(t.TempDir(), "pubpresence")
	args := []string{"build"}
	for i := 0; i < len(gb.args); i++ {
		a := expand(gb.args[i])
		if a == "-o" && i+1 < len(gb.args) {
			args = append(args, "-o", bin)
			i++
			continue
		}
		args = append(args, a)
	}
	build := exec.Command(gocmd, args...)
	build.Dir = root
	build.Env = os.Environ()
	for _, e := range gb.env {
		build.Env = append(build.Env, expand(e))
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a PT_INTERP program header: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary needs shared libraries %q (%v)", libs, err)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -s was not applied")
	}

	var stdout, stderr bytes.Buffer
	run := exec.Command(bin, "version")
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, stderr.String())
	}
	if want := "pubpresence " + testVersion + "\n"; stdout.String() != want {
		t.Errorf("version printed %q, want %q", stdout.String(), want)
	}
}
