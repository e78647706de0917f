// Command latchkey-bench measures the token endpoint of an OAuth 2.0 /
// OpenID Connect server on this machine: Latchkey or any other server that
// publishes OpenID Provider metadata and has a sign-in page an HTML form can
// drive (internal/flow).
//
// It obtains refresh tokens through the real sign-in and consent pages
// (authorization code flow with PKCE, golang.org/x/oauth2), then runs C
// workers for D seconds and reports grants per second, latency percentiles,
// errors by kind, and — given the server's PID — the server's CPU time per
// grant, read from /proc/PID/stat.
//
//	latchkey-bench -issuer http://127.0.0.1:8080 -client-id bench -client-secret S \
//	    -redirect-uri http://localhost:9999/cb -username bench -password P \
//	    -mode refresh -c 16 -d 20s -pid $(pgrep -x latchkey)
//
// Modes:
//
//	refresh     refresh grants with rotation; each worker owns its tokens
//	            and always sends the newest one (the default)
//	code        a whole authorization per iteration: /authorize with the
//	            worker's signed-in browser, then the code exchange; the
//	            exchange is the timed grant, the iteration is reported too
//	introspect  RFC 7662 introspection of the workers' access tokens
//
// With -tokens-out FILE it only obtains the refresh tokens and writes them
// to FILE, for another load generator (cmd/latchkey-bench/wrk: wrk, a C
// event loop, cross-checks this tool's latencies).
//
// It only ever connects to loopback addresses (127.0.0.0/8, ::1,
// localhost): load against any other machine is forbidden here, and the
// tool refuses such targets, including ones named by the discovery
// document. Its loops are bounded in time (-d at most 10m) and optionally in
// count (-max-requests).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds on what one run may do.
const (
	maxConcurrency = 1024
	maxTokens      = 10000
	maxDuration    = 10 * time.Minute
	maxWarmup      = time.Minute
)

type options struct {
	issuer, clientID, clientSecret, redirectURI, username, password string
	scope, prompt, authMethod, mode, introspectToken                string
	concurrency, tokens                                             int
	duration, warmup, timeout, interval                             time.Duration
	pids                                                            []int
	cpuMatch                                                        *regexp.Regexp
	maxRequests                                                     int64
	json                                                            bool
	label                                                           string
	dump                                                            string // -dump FILE
	tokensOut                                                       string // -tokens-out FILE
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "latchkey-bench:", err)
		os.Exit(1)
	}
}

type pidList []int

func (p *pidList) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p *pidList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad PID %q", f)
		}
		*p = append(*p, n)
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer, lookup func(string) (string, bool)) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("latchkey-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.issuer, "issuer", "", "issuer URL; its discovery document names the endpoints. LOOPBACK ONLY (127.0.0.0/8, ::1, localhost): load against any other address is forbidden in this workplace and refused")
	fs.StringVar(&o.clientID, "client-id", "", "client id")
	fs.StringVar(&o.clientSecret, "client-secret", "", "client secret (env LATCHKEY_BENCH_CLIENT_SECRET); empty for a public client")
	fs.StringVar(&o.authMethod, "auth", "basic", "client authentication: basic (client_secret_basic) or post (client_secret_post)")
	fs.StringVar(&o.redirectURI, "redirect-uri", "", "the client's registered redirect URI (never fetched: the flow stops there)")
	fs.StringVar(&o.username, "username", "", "user to sign in as")
	fs.StringVar(&o.password, "password", "", "the user's password (env LATCHKEY_BENCH_PASSWORD)")
	fs.StringVar(&o.scope, "scope", "openid offline_access", "scope requested at sign-in")
	fs.StringVar(&o.prompt, "prompt", "", `prompt parameter for the authorization request (some servers need "consent" to issue refresh tokens)`)
	fs.StringVar(&o.mode, "mode", "refresh", "refresh, code or introspect")
	fs.StringVar(&o.introspectToken, "introspect-token", "access", "introspect mode: the access or the refresh token")
	fs.IntVar(&o.concurrency, "c", 16, fmt.Sprintf("concurrent workers (1..%d)", maxConcurrency))
	fs.IntVar(&o.tokens, "n", 0, "refresh tokens (families) to obtain, shared out among the workers; 0 means one per worker")
	fs.DurationVar(&o.duration, "d", 20*time.Second, "measured duration (at most 10m)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before measuring (at most 1m)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.Int64Var(&o.maxRequests, "max-requests", 0, "stop after this many load requests (0: no limit besides -d)")
	var pids pidList
	fs.Var(&pids, "pid", "server process ID(s), comma-separated: report their CPU time per grant (from /proc/PID/stat)")
	cpuMatch := fs.String("cpu-match", "", `also count the CPU of processes whose command line matches this regexp at the start of the measurement (e.g. "postgres: .* test" for the database backends)`)
	fs.DurationVar(&o.interval, "interval", 0, "also report throughput, server CPU and server memory (with -pid) for every interval of the measured window, e.g. 1m for a long run (0: only the totals)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.StringVar(&o.dump, "dump", "", "also write every measured request to this file, one line each: its start on CLOCK_MONOTONIC and its latency, in nanoseconds (Linux; lines requests up with `perf record -k CLOCK_MONOTONIC` of the server's core, see latchkey-bench sched)")
	fs.StringVar(&o.tokensOut, "tokens-out", "", "obtain -n refresh tokens, write them to this new file (one per line, mode 0600; an existing file is refused) and exit without load: for another load generator, e.g. wrk with cmd/latchkey-bench/wrk/refresh.lua. Each token rotates on use: a token file serves one run")
	fs.StringVar(&o.label, "label", "", `free text stored in the result (e.g. "sqlite ES256"); summarize groups runs by it`)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: latchkey-bench -issuer URL -client-id ID [-client-secret S] -redirect-uri URI -username U -password P [flags]\n"+
			"       latchkey-bench summarize RESULT.json ...\n"+
			"       latchkey-bench trace TRACE\n"+
			"       latchkey-bench sched -dump DUMP PERF_SCRIPT\n"+
			"       latchkey-bench stalls [-d 20s] [-cpu 0] [-busy 1] [-window 3ms,12ms]\n\n"+
			"Measures a token endpoint on THIS machine (loopback addresses only).\n"+
			"summarize prints the medians of several -json results, grouped by -label, mode and -c.\n"+
			"trace splits the request cycles of a Go execution trace of the server (/debug/pprof/trace) into\n"+
			"running, runnable and waiting time, for the median and the slowest 1%.\n"+
			"sched lines a -dump of a run up with a perf sched_switch trace of the server's core: what ran\n"+
			"there, or nothing, while the slowest 1% waited.\n"+
			"stalls measures how often this machine takes a core away from a busy thread, and the p99/p50\n"+
			"no one-core server can get under because of it.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.pids = pids
	if o.clientSecret == "" {
		o.clientSecret, _ = lookup("LATCHKEY_BENCH_CLIENT_SECRET")
	}
	if o.password == "" {
		o.password, _ = lookup("LATCHKEY_BENCH_PASSWORD")
	}
	if *cpuMatch != "" {
		re, err := regexp.Compile(*cpuMatch)
		if err != nil {
			return nil, fmt.Errorf("-cpu-match: %w", err)
		}
		o.cpuMatch = re
	}
	if o.tokens == 0 {
		o.tokens = o.concurrency
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var errs []error
	if o.issuer == "" {
		errs = append(errs, errors.New("-issuer is required"))
	} else if err := checkTarget(o.issuer); err != nil {
		errs = append(errs, fmt.Errorf("-issuer: %w", err))
	}
	for name, v := range map[string]string{"-client-id": o.clientID, "-redirect-uri": o.redirectURI, "-username": o.username, "-password": o.password} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	switch o.mode {
	case "refresh", "code":
	case "introspect":
		if o.clientSecret == "" {
			errs = append(errs, errors.New("-mode introspect needs a confidential client (-client-secret)"))
		}
	default:
		errs = append(errs, fmt.Errorf("-mode %q: want refresh, code or introspect", o.mode))
	}
	if o.authMethod != "basic" && o.authMethod != "post" {
		errs = append(errs, fmt.Errorf("-auth %q: want basic or post", o.authMethod))
	}
	if o.introspectToken != "access" && o.introspectToken != "refresh" {
		errs = append(errs, fmt.Errorf("-introspect-token %q: want access or refresh", o.introspectToken))
	}
	if o.concurrency < 1 || o.concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("-c must be between 1 and %d", maxConcurrency))
	}
	if o.mode != "code" && (o.tokens < o.concurrency || o.tokens > maxTokens) {
		errs = append(errs, fmt.Errorf("-n must be between -c (%d) and %d", o.concurrency, maxTokens))
	}
	if o.duration <= 0 || o.duration > maxDuration {
		errs = append(errs, fmt.Errorf("-d must be positive and at most %s", maxDuration))
	}
	if o.warmup < 0 || o.warmup > maxWarmup {
		errs = append(errs, fmt.Errorf("-warmup must be between 0 and %s", maxWarmup))
	}
	if o.timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be positive"))
	}
	if o.maxRequests < 0 {
		errs = append(errs, errors.New("-max-requests must not be negative"))
	}
	if o.dump != "" {
		if _, err := monotonicNow(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.tokensOut != "" && o.mode != "refresh" {
		errs = append(errs, errors.New("-tokens-out obtains refresh tokens: it takes -mode refresh"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) > 0 && args[0] == "summarize" {
		return summarize(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "trace" {
		return traceCmd(args[1:], stdout) // trace.go
	}
	if len(args) > 0 && args[0] == "sched" {
		return schedCmd(args[1:], stdout) // sched.go
	}
	if len(args) > 0 && args[0] == "stalls" {
		return stallsCmd(args[1:], stdout, stderr) // stalls.go
	}
	o, err := parseFlags(args, stderr, lookup)
	if err != nil {
		return err
	}
	var dump *os.File // -dump: created now, so a bad path fails before the run
	if o.dump != "" {
		if dump, err = os.Create(o.dump); err != nil {
			return fmt.Errorf("-dump: %w", err)
		}
		defer dump.Close()
	}
	var tokensOut *os.File // -tokens-out: created now, for the same reason
	if o.tokensOut != "" {
		if tokensOut, err = os.OpenFile(o.tokensOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return fmt.Errorf("-tokens-out: %w", err)
		}
		defer func() {
			if tokensOut != nil { // not written: leave no half-written file
				tokensOut.Close()
				os.Remove(o.tokensOut)
			}
		}()
	}
	progress := func(format string, a ...any) {
		if !o.json {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	t := newTransport(o.concurrency)
	defer t.CloseIdleConnections()
	hc := newClient(t, o.timeout)
	m, err := discover(ctx, hc, o.issuer)
	if err != nil {
		return err
	}
	if o.mode == "introspect" && m.IntrospectionEndpoint == "" {
		return errors.New("the discovery document has no introspection_endpoint")
	}
	r := &runner{o: o, m: m, hc: hc, wantID: strings.Contains(" "+o.scope+" ", " openid ")}
	r.budget.Store(o.maxRequests)

	// Setup, not measured: tokens for refresh and introspect; a signed-in
	// browser per worker for code.
	creds := make([][]*credential, o.concurrency)
	sessions := make([]*session, o.concurrency)
	setup := time.Now()
	if o.mode == "code" {
		progress("signing in %d browsers through %s ...", o.concurrency, m.AuthorizationEndpoint)
		for i := range sessions {
			sessions[i] = newSession(o, m, t)
			if _, err := sessions[i].login(ctx); err != nil {
				return fmt.Errorf("browser %d: %w", i+1, err)
			}
		}
	} else {
		progress("obtaining %d refresh tokens through %s ...", o.tokens, m.AuthorizationEndpoint)
		all, err := acquire(ctx, newSession(o, m, t), o.tokens)
		if err != nil {
			return err
		}
		if tokensOut != nil {
			if err := writeTokens(tokensOut, all); err != nil {
				return fmt.Errorf("-tokens-out: %w", err)
			}
			tokensOut = nil
			progress("wrote %d refresh tokens to %s", len(all), o.tokensOut)
			return nil
		}
		for i, c := range all {
			creds[i%o.concurrency] = append(creds[i%o.concurrency], c)
		}
	}
	progress("setup took %s; warming up %s, then measuring %s with %d workers", time.Since(setup).Round(time.Millisecond), o.warmup, o.duration, o.concurrency)

	r.start = time.Now().Add(o.warmup)
	r.end = r.start.Add(o.duration)
	var startMono int64 // r.start on CLOCK_MONOTONIC, for -dump
	if o.dump != "" {
		now, err := monotonicNow()
		if err != nil {
			return err
		}
		startMono = now + int64(time.Until(r.start))
	}
	results := make([]*result, o.concurrency)
	var wg sync.WaitGroup
	for i := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.work(ctx, creds[i], sessions[i])
		}()
	}

	// CPU counters at the start of the window and after the last request.
	select {
	case <-time.After(time.Until(r.start)):
	case <-ctx.Done():
	}
	self := os.Getpid()
	var extra []int
	if o.cpuMatch != nil {
		skip := map[int]bool{self: true}
		for _, p := range o.pids {
			skip[p] = true
		}
		extra = matchingPIDs(o.cpuMatch, skip)
	}
	srv0, extra0, self0 := snapshot(o.pids), snapshot(extra), snapshot([]int{self})
	busy0, total0, _ := machineCPU()
	var series []interval
	sampled := make(chan struct{})
	if o.interval > 0 {
		go func() {
			defer close(sampled)
			series = r.sample(ctx, o.interval, srv0)
		}()
	} else {
		close(sampled)
	}
	wg.Wait()
	<-sampled
	srv1, extra1, self1 := snapshot(o.pids), snapshot(extra), snapshot([]int{self})
	busy1, total1, _ := machineCPU()
	if err := ctx.Err(); err != nil {
		return err
	}

	if dump != nil {
		err := writeDump(dump, startMono, results)
		if err == nil {
			err = dump.Close()
		}
		if err != nil {
			return fmt.Errorf("-dump: %w", err)
		}
	}
	rep := newReport(r, results)
	rep.setCPU(o.pids, srv0.since(srv1), extra, extra0.since(extra1), self0.since(self1), busy1-busy0, total1-total0)
	rep.setMem(o.pids)
	rep.Intervals = series
	if o.json {
		return rep.writeJSON(stdout)
	}
	rep.writeText(stdout)
	return nil
}

// writeTokens writes each credential's refresh token on a line of f and
// closes it.
func writeTokens(f *os.File, creds []*credential) error {
	w := bufio.NewWriter(f)
	for _, c := range creds {
		w.WriteString(c.refresh)
		w.WriteByte('\n')
	}
	err := w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
