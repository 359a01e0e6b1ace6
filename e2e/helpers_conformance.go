package e2e

// Helpers of the conformance tests (conformance_*_test.go): one federation
// and one regiondns process shared by every subtest, raw packets built by
// hand, and DNS clients that read exactly what the server sends (or that it
// sends nothing).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// The conformance world's zone and its negative-answer parameters: the SOA
// TTL (60) and MINIMUM (30) differ, and ttl.negative (300) is above both,
// so that RFC 2308's min(SOA TTL, MINIMUM) is what decides the TTL of the
// SOA in a negative answer.
const (
	confZone       = "pg.example.internal."
	confSOATTL     = 60
	confSOAMinimum = 30
	confNegTTL     = 300
)

// The conformance world's Consul data.
const (
	// confBigReplicas is the number of replicas of cluster "big": its ro
	// A and SRV answers do not fit in 512 bytes.
	confBigReplicas = 40
	// confWideInstances is the number of instances of the Consul service
	// "wide" (no zone name): its SRV answer with glue does not fit in 1232
	// bytes, so Consul truncates it over UDP (enable_truncate).
	confWideInstances = 60
	// confDNSTTL is the TTL Consul DNS gives services and nodes (its
	// default, 0, would make every delegated answer uncacheable).
	confDNSTTL = "5s"
	// confPreparedQuery is the name of the prepared query created in dc1.
	confPreparedQuery = "orders-replicas"
	// confSilence is how long a client waits to conclude that no response
	// is coming.
	confSilence = 300 * time.Millisecond
)

// confWorld is the shared fixture of the conformance tests.
type confWorld struct {
	Fed *Federation
	// R is regiondns with delegation on, a TCP idle timeout of 1 s and at
	// most 4 TCP connections.
	R *Regiondns
	// Addr is R's DNS address.
	Addr string
	// ConsulDNS is the DNS address of the dc1 agent regiondns delegates to
	// first.
	ConsulDNS string

	// Addresses of the members of cluster "orders": the dc1 leader, the dc1
	// replicas, the dc2 standby leader.
	OrdersLeader   string
	OrdersReplicas []string
	OrdersStandby  string
	// BigReplicas are the addresses of cluster "big"'s dc1 replicas.
	BigReplicas []string
	// Wide are the addresses of the "wide" service's instances in dc1.
	Wide []string
}

// confEnv is the environment of the shared regiondns process.
var confEnv = map[string]string{
	"REGIONDNS_TCP_IDLE_TIMEOUT": "1s",
	"REGIONDNS_TCP_MAX_CONNS":    "4",
	"REGIONDNS_UPSTREAM_TIMEOUT": "1s",
	"REGIONDNS_LOG_LEVEL":        "debug",
}

// startConfWorld starts a federation whose Consul DNS caches (TTL 5 s) and
// truncates (TC over UDP), registers the clusters and services, and starts
// regiondns; it returns once regiondns answers every zone name.
func startConfWorld(t *testing.T) *confWorld {
	t.Helper()
	f := StartFederation(t, FederationOptions{ExtraConfig: map[string]any{
		"dns_config": map[string]any{
			"service_ttl":     map[string]any{"*": confDNSTTL},
			"node_ttl":        confDNSTTL,
			"enable_truncate": true,
		},
	}})
	w := &confWorld{Fed: f, ConsulDNS: f.DC1.Agent().DNSAddr()}

	// orders: a leader and two replicas in dc1, a standby leader in dc2,
	// registered on the agents as Patroni does.
	dc1, dc2 := f.DC1.Server, f.DC2.Server
	w.OrdersLeader = "127.0.10.1"
	members := []*PatroniMember{
		RegisterOnAgent(t, dc1, MemberSpec{Scope: "orders", Name: "orders-1", Address: w.OrdersLeader, Role: RoleLeader}),
	}
	for i := 2; i <= 3; i++ {
		addr := fmt.Sprintf("127.0.10.%d", i)
		w.OrdersReplicas = append(w.OrdersReplicas, addr)
		members = append(members, RegisterOnAgent(t, dc1, MemberSpec{Scope: "orders", Name: fmt.Sprintf("orders-%d", i), Address: addr}))
	}
	w.OrdersStandby = "127.0.20.1"
	members = append(members, RegisterOnAgent(t, dc2, MemberSpec{Scope: "orders", Name: "orders-dr-1", Address: w.OrdersStandby, Role: RoleStandbyLeader}))

	// big: a leader and 40 replicas, each on a node of its own (no agent
	// check to run: their status is set at once).
	members = append(members, RegisterOnNode(t, dc1, MemberSpec{Scope: "big", Name: "big-leader", Address: "127.0.11.1", Role: RoleLeader}))
	for i := 1; i <= confBigReplicas; i++ {
		addr := fmt.Sprintf("127.0.12.%d", i)
		w.BigReplicas = append(w.BigReplicas, addr)
		members = append(members, RegisterOnNode(t, dc1, MemberSpec{Scope: "big", Name: fmt.Sprintf("big-r%02d", i), Address: addr}))
	}

	// wide: a plain Consul service with many instances and no check.
	for i := 1; i <= confWideInstances; i++ {
		addr := fmt.Sprintf("127.0.30.%d", i)
		w.Wide = append(w.Wide, addr)
		err := dc1.API().Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: fmt.Sprintf("wide-%d", i), Name: "wide", Address: addr, Port: 7000 + i,
		})
		if err != nil {
			t.Fatalf("register wide-%d: %v", i, err)
		}
	}
	// A prepared query for the replicas of orders.
	if _, _, err := dc1.API().PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name:    confPreparedQuery,
		Service: api.ServiceQuery{Service: "orders", Tags: []string{"replica"}},
	}, nil); err != nil {
		t.Fatalf("create prepared query: %v", err)
	}
	for _, m := range members {
		m.WaitCheck(20*time.Second, api.HealthPassing)
	}

	w.R = StartRegiondns(t, confZoneYAML(f, nil), confEnv)
	w.Addr = w.R.DNSAddr()
	WaitFor(t, 20*time.Second, func() (bool, string) {
		for name, want := range map[string][]string{
			"rw.orders." + confZone: {w.OrdersLeader},
			"ro.orders." + confZone: w.OrdersReplicas,
			"ro.big." + confZone:    w.BigReplicas,
		} {
			resp, err := Exchange(w.Addr, NewQuery(name, dns.TypeA), true)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", name, err)
			}
			if got := AnswerAddrs(resp); !slices.Equal(got, sortedCopy(want)) {
				return false, fmt.Sprintf("%s answers %v, want %v", name, got, want)
			}
		}
		return true, ""
	})
	return w
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// confZoneYAML renders the conformance zone file for f. consulDNS, when
// not nil, gives the consul_dns addresses of a datacenter (the agents' DNS
// addresses otherwise).
func confZoneYAML(f *Federation, consulDNS func(*Datacenter) []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "zone: %s\n", confZone)
	fmt.Fprintf(&b, "soa: {minimum: %d}\n", confSOAMinimum)
	fmt.Fprintf(&b, "ttl: {rw: 1, ro: 1, passive: 1, txt: 1, negative: %d, soa: %d, ns: %d}\n", confNegTTL, confSOATTL, confSOATTL)
	b.WriteString("regions:\n")
	for _, dc := range f.Datacenters() {
		dnsAddrs := []string{dc.Agent().DNSAddr()}
		if consulDNS != nil {
			dnsAddrs = consulDNS(dc)
		}
		quoted := make([]string, len(dnsAddrs))
		for i, a := range dnsAddrs {
			quoted[i] = strconv.Quote(a)
		}
		fmt.Fprintf(&b, "  - {name: %s, role: %s, datacenter: %s, consul_http: [%q], consul_dns: [%s]}\n",
			dc.Region, dc.Region, dc.Name, dc.Agent().HTTPURL(), strings.Join(quoted, ", "))
	}
	b.WriteString("clusters:\n")
	b.WriteString("  - {label: orders, scopes: {main: orders, standby: orders}}\n")
	b.WriteString("  - {label: big, scopes: {main: big, standby: big}}\n")
	return b.String()
}

// --- messages -------------------------------------------------------------

// confQuery returns a query for name (kept exactly as given: its case is
// part of the test) with a random ID and RD as given.
func confQuery(name string, qtype uint16, rd bool) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Id: dns.Id(), Opcode: dns.OpcodeQuery, RecursionDesired: rd}}
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
	return m
}

// confEDNS adds an OPT record with a payload size, version and DO bit, and
// returns it for more changes.
func confEDNS(m *dns.Msg, size uint16, version uint8, do bool) *dns.OPT {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(size)
	opt.SetVersion(version)
	if do {
		opt.SetDo()
	}
	m.Extra = append(m.Extra, opt)
	return opt
}

// confPack packs m, failing the test if it cannot.
func confPack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack %v: %v", m, err)
	}
	return wire
}

// confHeader returns a 12-byte DNS header.
func confHeader(id, flags, qd, an, ns, ar uint16) []byte {
	h := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(h[2*i:], v)
	}
	return h
}

// confName returns name (dot-separated, no escapes) in wire format.
func confName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// confQuestion returns a question in wire format.
func confQuestion(name string, qtype, qclass uint16) []byte {
	q := confName(name)
	q = binary.BigEndian.AppendUint16(q, qtype)
	return binary.BigEndian.AppendUint16(q, qclass)
}

// Header flag bits.
const (
	confFlagQR = 1 << 15
	confFlagRD = 1 << 8
)

// confOpcodeFlags returns the flags of a header with opcode.
func confOpcodeFlags(opcode int) uint16 { return uint16(opcode&0xF) << 11 }

// --- UDP -----------------------------------------------------------------

// errNoResponse is a read that ended at its deadline without a response.
var errNoResponse = errors.New("no response before the deadline")

// confUDP sends pkt from a fresh socket and returns the raw response, or
// errNoResponse when none arrives within wait.
func confUDP(addr string, pkt []byte, wait time.Duration) ([]byte, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(pkt); err != nil {
		return nil, err
	}
	return confReadUDP(c, wait)
}

// confReadUDP reads one datagram from c within wait.
func confReadUDP(c net.Conn, wait time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, errNoResponse
		}
		return nil, err
	}
	return buf[:n], nil
}

// confUnpack unpacks a response, failing the test if it does not parse.
func confUnpack(t testing.TB, wire []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(wire); err != nil {
		t.Fatalf("response does not unpack: %v (% x)", err, wire)
	}
	return m
}

// confExchangeUDP sends m over UDP and returns the response and its size
// on the wire.
func confExchangeUDP(t testing.TB, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	wire, err := confUDP(addr, confPack(t, m), queryTimeout)
	if err != nil {
		t.Fatalf("%s over UDP: %v", confDescribe(m), err)
	}
	resp := confUnpack(t, wire)
	if resp.Id != m.Id {
		t.Fatalf("%s over UDP: response ID %d, want %d", confDescribe(m), resp.Id, m.Id)
	}
	return resp, len(wire)
}

// confDescribe names a query's question for messages.
func confDescribe(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return fmt.Sprintf("query %d (no question)", m.Id)
	}
	q := m.Question[0]
	return fmt.Sprintf("%s %s", q.Name, dns.TypeToString[q.Qtype])
}

// --- TCP -----------------------------------------------------------------

// confTCP is a DNS-over-TCP connection (RFC 1035 §4.2.2, RFC 7766).
type confTCP struct {
	net.Conn
	r *bufio.Reader
}

// confDialTCP connects to addr.
func confDialTCP(t testing.TB, addr string) *confTCP {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, queryTimeout)
	if err != nil {
		t.Fatalf("dial tcp %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &confTCP{Conn: c, r: bufio.NewReader(c)}
}

// frame returns msg with its 2-byte length prefix.
func confFrame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// write writes b in one write.
func (c *confTCP) write(t testing.TB, b []byte) {
	t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(queryTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatalf("tcp write: %v", err)
	}
}

// read reads one length-prefixed message within wait. It returns
// errNoResponse when nothing arrived by then, io.EOF when the server closed
// the connection.
func (c *confTCP) read(wait time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c.r, l[:]); err != nil {
		return nil, confReadErr(err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c.r, msg); err != nil {
		return nil, confReadErr(err)
	}
	return msg, nil
}

func confReadErr(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return errNoResponse
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errNoResponse
	}
	// A reset by the server is a close too.
	if strings.Contains(err.Error(), "connection reset") {
		return io.EOF
	}
	return err
}

// exchange writes m and reads its response within queryTimeout.
func (c *confTCP) exchange(t testing.TB, m *dns.Msg) *dns.Msg {
	t.Helper()
	c.write(t, confFrame(confPack(t, m)))
	wire, err := c.read(queryTimeout)
	if err != nil {
		t.Fatalf("%s over TCP: %v", confDescribe(m), err)
	}
	resp := confUnpack(t, wire)
	if resp.Id != m.Id {
		t.Fatalf("%s over TCP: response ID %d, want %d", confDescribe(m), resp.Id, m.Id)
	}
	return resp
}

// confExchangeTCP sends m over a fresh TCP connection.
func confExchangeTCP(t testing.TB, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := confDialTCP(t, addr)
	defer c.Close()
	return c.exchange(t, m)
}

// --- comparing answers -----------------------------------------------------

// confRRData returns the records of rrs as sorted strings without TTL, with
// owner and every name lower-cased: the answer's data, as two servers that
// answer the same question must agree on it.
func confRRData(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		out = append(out, strings.ToLower(c.String()))
	}
	slices.Sort(out)
	return out
}

// confSOA returns the only SOA record of rrs, or nil.
func confSOA(rrs []dns.RR) *dns.SOA {
	var soa *dns.SOA
	for _, rr := range rrs {
		if s, ok := rr.(*dns.SOA); ok {
			if soa != nil {
				return nil
			}
			soa = s
		}
	}
	return soa
}

// confMetric returns the value of an unlabelled counter or gauge from
// regiondns's /metrics.
func confMetric(t testing.TB, r *Regiondns, name string) float64 {
	t.Helper()
	code, body := r.Get("/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// confMixCase returns name with every other letter upper-cased, as a
// resolver using 0x20 randomisation would send it.
func confMixCase(name string) string {
	b := []byte(name)
	up := false
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			if up {
				b[i] = c - 'a' + 'A'
			}
			up = !up
		}
	}
	return string(b)
}
