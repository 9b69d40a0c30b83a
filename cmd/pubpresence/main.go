// Command pubpresence publishes the presence of every user of a Jabber
// server on pubsub nodes. See README.md.
//
//	pubpresence [run] --config FILE   run the service (the default)
//	pubpresence check --config FILE   validate the configuration and exit
//	pubpresence version               print the version
//	pubpresence watch --jid JID …     follow the nodes as a client and print the state
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/pubpresence/pubpresence/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: pubpresence [run|check|version] [--config FILE]
       pubpresence watch --jid JID [flags]

  run      run the service until SIGINT or SIGTERM (the default)
  check    validate the configuration: exit 0 when valid, 2 with one line per problem
  version  print the version
  watch    log in as a reader and print the state, then every change
           (pubpresence watch -h tells more)
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "watch" {
		return watchMain(args[1:], stdout, stderr) // its own flags
	}
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("pubpresence "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	path := fs.String("config", "pubpresence.toml", "configuration file (TOML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "pubpresence", versionString())
		return 0
	case "check":
		if _, err := config.Load(*path); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintln(stdout, *path+": ok")
		return 0
	case "run":
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if err := serve(cfg, *path, stderr); err != nil {
			fmt.Fprintln(stderr, "pubpresence:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
