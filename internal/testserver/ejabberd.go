package testserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// command returns the process that runs the server in the foreground, from
// its private directory.
func (s *Server) command() (*exec.Cmd, error) {
	if s.Kind == Prosody {
		cmd := exec.Command("prosody", "--config", s.ConfigPath, "-F")
		cmd.Dir = s.Dir
		return cmd, nil
	}
	libs, err := ejabberdLibs()
	if err != nil {
		return nil, err
	}
	spool := filepath.Join(s.Dir, "spool")
	// No distribution (the node is nonode@nohost): no epmd, no cookie, and
	// nothing listens but the configured loopback ports. A node of a
	// Cluster is the exception: it has distribution, on loopback only, with
	// the cluster's private epmd (distNode). SIGTERM is a clean stop
	// (init:stop) in Erlang/OTP ≥ 20.
	args := []string{"-noinput", "-noshell", "+K", "true", "+P", "250000",
		"-mnesia", "dir", `"` + spool + `"`}
	args = append(args, s.opts.erlFlags...)
	if s.dist != nil {
		args = append(args, s.dist.args()...)
	}
	args = append(args, "-s", "ejabberd")
	if s.dist != nil && s.dist.join != "" {
		args = append(args, "-eval", joinEval(s.dist.join))
	}
	if !s.opts.rosterOnDisc {
		args = append(args, "-eval", rosterInRAMEval)
	}
	if probe := s.probeEval(); probe != "" {
		args = append(args, "-eval", probe)
	}
	cmd := exec.Command("erl", args...)
	cmd.Dir = spool
	cmd.Env = append(os.Environ(),
		"EJABBERD_CONFIG_PATH="+s.ConfigPath,
		"EJABBERD_LOG_PATH="+s.LogPath,
		"ERL_LIBS="+libs,
		"ERL_CRASH_DUMP="+filepath.Join(s.Dir, "logs", "erl_crash.dump"),
		"HOME="+s.Dir, // anything Erlang writes to ~ stays private
	)
	if s.dist != nil {
		cmd.Env = append(cmd.Env, s.dist.env()...)
	}
	return cmd, nil
}

// rosterInRAMEval is erl's -eval that makes the roster table a RAM copy
// with a disc log (disc_copies) once ejabberd has created it. ejabberd
// reads ejabberd.schema (mnesiaSchema) only for tables that exist already:
// it creates a new table with its built-in type (dets for the roster) and
// changes it to the schema's at the next start. On a fresh spool this
// does now what that restart would do; the schema file keeps it so at
// every later start.
// The change leaves the table's index (on the user) in dets until the
// next start loads the table; dropping and adding it builds it in RAM, as
// that start would.
const rosterInRAMEval = `try mnesia:table_info(roster, storage_type) of ` +
	`disc_copies -> ok; ` +
	`_ -> io:format("roster to disc_copies: ~p, index: ~p ~p~n", [mnesia:change_table_copy_type(roster, node(), disc_copies), ` +
	`mnesia:del_table_index(roster, us), mnesia:add_table_index(roster, us)]) ` +
	`catch C:E -> io:format("roster to disc_copies: ~p:~p~n", [C, E]) end.`

// ejabberdLibs returns the directory that holds Debian's ejabberd-<version>
// Erlang application (ERL_LIBS), e.g. /usr/lib/x86_64-linux-gnu.
func ejabberdLibs() (string, error) {
	if _, err := exec.LookPath("erl"); err != nil {
		return "", err
	}
	apps, _ := filepath.Glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app")
	more, _ := filepath.Glob("/usr/lib/ejabberd-*/ebin/ejabberd.app")
	apps = append(apps, more...)
	if len(apps) == 0 {
		return "", errors.New("no ejabberd application (ebin/ejabberd.app) under /usr/lib")
	}
	sort.Strings(apps)
	// .../ejabberd-23.01/ebin/ejabberd.app → ...
	return filepath.Dir(filepath.Dir(filepath.Dir(apps[len(apps)-1]))), nil
}

// checkKind reports options that the kind does not support.
func (o options) checkKind(kind Kind) error {
	switch kind {
	case Prosody:
		return nil
	case Ejabberd:
		if o.storage != "sql" {
			return fmt.Errorf("storage %q: ejabberd stores everything in Mnesia; WithStorage is for Prosody", o.storage)
		}
		if o.sharedRoster {
			return errors.New("WithSharedRoster: not supported on ejabberd (its shared roster groups live in the database, not in the config)")
		}
		if o.privilege == privilegeMisplaced {
			return errors.New("WithPrivilegeMisconfigured: not supported on ejabberd (it misplaces Prosody's privileged_entities; use WithPrivilege)")
		}
		if o.conflictResolve != "" {
			return errors.New("component_conflict_resolve is a Prosody option (ejabberd accepts every connection of a component)")
		}
		return nil
	}
	return fmt.Errorf("unknown server kind %q", kind)
}
