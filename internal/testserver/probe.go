package testserver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProbeEnv names the environment variable that makes every ejabberd the
// harness starts write the state of its own Erlang VM to Dir/logs/probe.log
// every so many seconds (e.g. "5"; unset or "0": no probe). It is for
// finding where a large run stalls (docs/ejabberd.md, "10 000 users in
// roster mode"): the harness's nodes have no Erlang distribution, so
// nothing else can look inside them while they run. Each line holds:
//
//	cpu_ms      CPU time the VM used since the last line (2 cores: ≤ 2× the period)
//	runq        processes ready to run, waiting for a scheduler
//	procs       processes; queued: messages waiting in all their queues
//	sessions    ejabberd_sm:connected_users_number()
//	routes      the component's routes: [{pid, message queue, top of its stack}];
//	            more than one is a second connection (or one ejabberd has not
//	            noticed is closed)
//	roster_cache the size of mod_roster's roster_cache (ets_cache)
//	top         the five longest message queues: {length, pid, initial call, current function}
//	roster      the roster items (Mnesia) whose contact is the component,
//	            counted by {subscription, ask}
//	mnesia      committed transactions so far, and the lock queue's length
//	dets        the disc-only (dets) tables and their sizes
//
// The last three ask Mnesia and dets: when they take over 3 s the line
// ends in "slow=timeout" instead.
const ProbeEnv = "PUBPRESENCE_EJABBERD_PROBE"

// probeEval returns erl's -eval that starts the probe, "" when ProbeEnv
// does not ask for one.
func (s *Server) probeEval() string {
	every, err := strconv.Atoi(os.Getenv(ProbeEnv))
	if err != nil || every <= 0 {
		return ""
	}
	path := filepath.Join(s.Dir, "logs", "probe.log")
	// The cheap numbers are read first and always written; the ones that
	// ask other processes (Mnesia, dets) are read by a helper given at
	// most 3 s, so that a clogged table shows as "timeout" and does not
	// stop the probe.
	code := `spawn(fun() ->
  Path = "@PATH@", Comp = <<"@COMP@">>, Every = @EVERY@ * 1000,
  Safe = fun(F) -> try F() catch C:E -> {C, E} end end,
  Info = fun(P) -> case erlang:process_info(P, [message_queue_len, current_stacktrace]) of
      undefined -> dead;
      [{_, M}, {_, St}] -> {P, M, [{Mo, F} || {Mo, F, _, _} <- lists:sublist(St, 6)]} end end,
  Slow = fun() ->
    Roster = Safe(fun() -> mnesia:async_dirty(fun() -> mnesia:foldl(fun(R, A) ->
        case element(2, element(4, R)) of
          Comp -> maps:update_with({element(6, R), element(7, R)}, fun(X) -> X + 1 end, 1, A);
          _ -> A end end, #{}, roster) end) end),
    Mn = Safe(fun() -> {mnesia:system_info(transaction_commits), length(mnesia:system_info(lock_queue))} end),
    Dets = Safe(fun() -> [{T, dets:info(T, size)} || T <- dets:all()] end),
    io_lib:format("roster=~0p mnesia=~0p dets=~0p", [Roster, Mn, Dets]) end,
  Loop = fun Loop() ->
    {_, Cpu} = erlang:statistics(runtime),
    Ps = erlang:processes(),
    Q = [{M, P} || P <- Ps, {message_queue_len, M} <- [erlang:process_info(P, message_queue_len)], M > 0],
    Top = [{M, P, Safe(fun() -> proc_lib:translate_initial_call(P) end),
            Safe(fun() -> element(2, erlang:process_info(P, current_function)) end)}
           || {M, P} <- lists:sublist(lists:reverse(lists:sort(Q)), 5)],
    Routes = Safe(fun() -> [Info(element(4, R)) || R <- mnesia:dirty_read(route, Comp)] end),
    Self = self(),
    W = spawn(fun() -> Self ! {slow, self(), Slow()} end),
    S = receive {slow, W, Txt} -> Txt after 3000 -> exit(W, kill), "slow=timeout" end,
    Line = io_lib:format("~s cpu_ms=~p runq=~p procs=~p queued=~p sessions=~p routes=~0p roster_cache=~p top=~0p ~s~n",
      [calendar:system_time_to_rfc3339(erlang:system_time(millisecond), [{unit, millisecond}]),
       Cpu, erlang:statistics(run_queue), length(Ps), lists:sum([M || {M, _} <- Q]),
       Safe(fun() -> ejabberd_sm:connected_users_number() end), Routes,
       Safe(fun() -> ets:info(roster_cache, size) end), Top, S]),
    file:write_file(Path, Line, [append]),
    timer:sleep(Every),
    Loop() end,
  Loop() end).`
	code = strings.NewReplacer("@PATH@", path, "@COMP@", s.Component, "@EVERY@", strconv.Itoa(every)).Replace(code)
	return code
}
