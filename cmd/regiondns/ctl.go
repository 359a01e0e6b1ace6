package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/policy"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// regiondns ctl: the operator's pins and drains, written to and removed
// from both regions' Consul KV with the server's Consul environment and
// token files, checked against the zone file and, with --server, a running
// server's /debug/state, whose observed data also says what the answers
// will become.

const ctlUsage = `usage: regiondns ctl <command> [flags]
  pin <cluster> <region> --reason R --for 2h   make region the active one of cluster until the pin expires
  unpin <cluster>                              remove the cluster's pin
  drain <cluster> <member> [--reason R]        take member out of the cluster's read names
  undrain <cluster> <member>                   put it back
  state [<cluster>]                            what the server decided, pins and drains included
flags: --server http://host:9253 (a running regiondns: checks the names and says what the answers
       will become), --config zone.yml (default $REGIONDNS_CONFIG), --wait 10s (how long to wait
       for --server to apply a change), --force (drain a member the server does not know)`

// maxPinFor bounds --for: a pin nobody remembers must not hold the active
// region for long.
const maxPinFor = 30 * 24 * time.Hour

// errUsage marks a command line that is not valid: exit code 2.
var errUsage = errors.New("usage")

// ctlOptions are the flags of regiondns ctl.
type ctlOptions struct {
	server, config, reason string
	pinFor, wait           time.Duration
	force                  bool
}

// ctl is one run of regiondns ctl.
type ctl struct {
	o   ctlOptions
	cfg *zones.Config
	out io.Writer
	// red redacts the Consul tokens ctl may send from its error text.
	red *watch.Redactor
	// now is the clock, for pins' expiry.
	now func() time.Time
}

// runCtl runs regiondns ctl with args (after "ctl") and returns the exit
// code: 0 done, 1 failed, 2 not a valid command line.
func runCtl(args []string, stdout, stderr io.Writer) int {
	err := ctlMain(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "regiondns ctl: %v\n%s\n", err, ctlUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "regiondns ctl: %v\n", err)
		return 1
	}
}

func ctlMain(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("regiondns ctl "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o ctlOptions
	fs.StringVar(&o.server, "server", "", "")
	fs.StringVar(&o.config, "config", "", "")
	fs.DurationVar(&o.wait, "wait", 10*time.Second, "")
	want := map[string][2]int{"pin": {2, 2}, "unpin": {1, 1}, "drain": {2, 2}, "undrain": {2, 2}, "state": {0, 1}}
	n, ok := want[verb]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, verb)
	}
	switch verb {
	case "pin":
		fs.StringVar(&o.reason, "reason", "", "")
		fs.DurationVar(&o.pinFor, "for", 0, "")
	case "drain":
		fs.StringVar(&o.reason, "reason", "", "")
		fs.BoolVar(&o.force, "force", false, "")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(pos) < n[0] || len(pos) > n[1] {
		return fmt.Errorf("%w: %s takes %s, not %q", errUsage, verb, argsWanted(verb), pos)
	}
	c, err := newCtl(o, stdout)
	if err != nil {
		return err
	}
	switch verb {
	case "pin":
		return c.pin(pos[0], pos[1])
	case "unpin":
		return c.unpin(pos[0])
	case "drain":
		return c.drain(pos[0], pos[1])
	case "undrain":
		return c.undrain(pos[0], pos[1])
	default:
		label := ""
		if len(pos) == 1 {
			label = pos[0]
		}
		return c.state(label)
	}
}

func argsWanted(verb string) string {
	switch verb {
	case "pin":
		return "<cluster> <region>"
	case "drain", "undrain":
		return "<cluster> <member>"
	case "unpin":
		return "<cluster>"
	default:
		return "[<cluster>]"
	}
}

// parseInterspersed parses fs's flags wherever they are among args, as an
// operator types them ("pin orders main --for 2h"), and returns the other
// arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// newCtl loads the zone file: the regions' Consul agents and token files,
// the control prefix, the clusters.
func newCtl(o ctlOptions, out io.Writer) (*ctl, error) {
	path := o.config
	if path == "" {
		s, err := loadSettings()
		if err != nil {
			return nil, err
		}
		path = s.Config
	}
	cfg, err := zones.Load(path)
	if err != nil {
		return nil, err
	}
	red := watch.NewRedactor()
	watch.LearnTokens(red, cfg)
	o.server = strings.TrimRight(o.server, "/")
	return &ctl{o: o, cfg: cfg, out: out, red: red, now: time.Now}, nil
}

// cluster returns the zone file's cluster label, or why there is none.
func (c *ctl) cluster(label string) (*zones.Cluster, error) {
	var labels []string
	for i := range c.cfg.Clusters {
		if c.cfg.Clusters[i].Label == label {
			return &c.cfg.Clusters[i], nil
		}
		labels = append(labels, c.cfg.Clusters[i].Label)
	}
	return nil, fmt.Errorf("cluster %q is not in the zone file; want one of %s", label, strings.Join(labels, ", "))
}

// pin writes cluster label's pin to region for --for.
func (c *ctl) pin(label, region string) error {
	cl, err := c.cluster(label)
	if err != nil {
		return err
	}
	var names []string
	for _, r := range c.cfg.Regions {
		names = append(names, r.Name)
	}
	switch {
	case !slices.Contains(names, region):
		return fmt.Errorf("region %q is not in the zone file; want one of %s", region, strings.Join(names, ", "))
	case c.o.reason == "":
		return fmt.Errorf("%w: pin needs --reason: say why, it is shown in the TXT records and /debug/state", errUsage)
	case c.o.pinFor <= 0 || c.o.pinFor > maxPinFor:
		return fmt.Errorf("%w: --for %s is not valid; want a duration up to %s, such as 2h", errUsage, c.o.pinFor, maxPinFor)
	}
	p := policy.Pin{Active: region, Reason: c.o.reason, Expires: c.now().Add(c.o.pinFor).UTC().Truncate(time.Second)}
	change := func(ctl *policy.Control) { ctl.Pin = &p }
	cs, err := c.checkServer(label)
	if err != nil {
		return err
	}
	return c.apply(cl, cs, watch.PinKey(c.cfg.ControlKeyPrefix(), label), mustJSON(p), change, func(got policy.Control) bool {
		return got.Pin != nil && got.Pin.Active == p.Active && got.Pin.Reason == p.Reason && got.Pin.Expires.Equal(p.Expires)
	})
}

// target returns cluster label and, with --server, its state on the
// server (see checkServer).
func (c *ctl) target(label string) (*zones.Cluster, *engine.ClusterState, error) {
	cl, err := c.cluster(label)
	if err != nil {
		return nil, nil, err
	}
	cs, err := c.checkServer(label)
	if err != nil {
		return nil, nil, err
	}
	return cl, cs, nil
}

// withoutDrain returns drains without member's, in a new slice.
func withoutDrain(drains []policy.Drain, member string) []policy.Drain {
	return slices.DeleteFunc(slices.Clone(drains), func(x policy.Drain) bool { return x.Member == member })
}

// unpin removes cluster label's pin.
func (c *ctl) unpin(label string) error {
	cl, cs, err := c.target(label)
	if err != nil {
		return err
	}
	return c.apply(cl, cs, watch.PinKey(c.cfg.ControlKeyPrefix(), label), nil,
		func(ctl *policy.Control) { ctl.Pin = nil },
		func(got policy.Control) bool { return got.Pin == nil })
}

// drain writes the drain key of member.
func (c *ctl) drain(label, member string) error {
	cl, cs, err := c.target(label)
	if err != nil {
		return err
	}
	if err := c.checkMember(cs, member); err != nil {
		return err
	}
	d := policy.Drain{Member: member, Reason: c.o.reason}
	value := mustJSON(struct {
		Reason string `json:"reason,omitempty"`
	}{c.o.reason})
	change := func(ctl *policy.Control) {
		ctl.Drains = withoutDrain(ctl.Drains, member)
		ctl.Drains = append(ctl.Drains, d)
		slices.SortFunc(ctl.Drains, func(a, b policy.Drain) int { return strings.Compare(a.Member, b.Member) })
	}
	return c.apply(cl, cs, watch.DrainKey(c.cfg.ControlKeyPrefix(), label, member), value, change,
		func(got policy.Control) bool { return got.Drained(member) })
}

// undrain removes the drain key of member.
func (c *ctl) undrain(label, member string) error {
	cl, cs, err := c.target(label)
	if err != nil {
		return err
	}
	change := func(ctl *policy.Control) {
		ctl.Drains = withoutDrain(ctl.Drains, member)
	}
	return c.apply(cl, cs, watch.DrainKey(c.cfg.ControlKeyPrefix(), label, member), nil, change,
		func(got policy.Control) bool { return !got.Drained(member) })
}

// checkMember refuses a drain of a member the server does not know, in
// either region, unless --force: a typo would drain nothing, silently.
func (c *ctl) checkMember(cs *engine.ClusterState, member string) error {
	if cs == nil {
		fmt.Fprintf(c.out, "member %s not checked: without --server, ctl cannot see the cluster's members\n", member)
		return nil
	}
	var known []string
	for _, o := range cs.Observed {
		for _, m := range o.Members {
			known = append(known, m.Member)
		}
		known = append(known, o.MemberKeys...)
	}
	slices.Sort(known)
	known = slices.Compact(known)
	if slices.Contains(known, member) || c.o.force {
		return nil
	}
	return fmt.Errorf("member %q of cluster %s is not known to the server; want one of %s (or --force to drain it anyway)",
		member, cs.Label, strings.Join(known, ", "))
}

// apply writes value at key in every region (nil: removes the key), says
// what the answers will become (with --server: the server's observed
// data, decided again with change applied to its control), and waits
// until the server applies it (applied says when it has).
func (c *ctl) apply(cl *zones.Cluster, cs *engine.ClusterState, key string, value []byte,
	change func(*policy.Control), applied func(policy.Control) bool) error {
	if err := c.writeAll(key, value); err != nil {
		return err
	}
	if cs == nil {
		fmt.Fprintln(c.out, "run with --server to check the change against a running regiondns and see what the answers will become")
		return nil
	}
	in := cs.Input(c.cfg.Options(cl), c.cfg.Main().Name, c.cfg.Standby().Name)
	in.Control.ReadAt = c.now()
	in.Now = in.Control.ReadAt
	change(&in.Control)
	after := policy.Decide(in)
	fmt.Fprintf(c.out, "the answers of %s will become:\n", cl.Label)
	printChange(c.out, cs.Decision, after)
	got, err := c.waitApplied(cl.Label, applied)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "the server applies it (control keys read from region %s at %s)\n", got.Control.Source,
		got.Control.ReadAt.UTC().Format(time.RFC3339))
	if !engine.AnswersOf(got.Decision).Equal(engine.AnswersOf(after)) {
		fmt.Fprintln(c.out, "its answers differ from the prediction (its data changed in between):")
		printChange(c.out, after, got.Decision)
	}
	return nil
}

// waitApplied polls the server until its control of label satisfies
// applied, for --wait.
func (c *ctl) waitApplied(label string, applied func(policy.Control) bool) (*engine.ClusterState, error) {
	deadline := c.now().Add(c.o.wait)
	for {
		cs, err := c.serverCluster(label)
		if err == nil && applied(cs.Control) {
			return cs, nil
		}
		if c.now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("its control keys, read from region %s at %s, do not have it yet", cs.Control.Source,
					cs.Control.ReadAt.UTC().Format(time.RFC3339))
			}
			return nil, fmt.Errorf("written, but the server at %s did not apply it within %s: %w", c.o.server, c.o.wait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
