package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// soakBlackholeLabel marks the delegated names the soak's upstream never
// answers: "<random>.blackhole.service.consul". regiondns lower-cases the
// name it sends upstream, so the label is found in its wire form.
const soakBlackholeLabel = "blackhole"

var soakBlackholeWire = append([]byte{byte(len(soakBlackholeLabel))}, soakBlackholeLabel...)

// soakProxy stands between regiondns and one Consul agent's DNS: it relays
// every query to the agent, except those for names under the blackhole
// label, which it drops, as an agent stuck on a slow lookup never answers.
// The flood of such names then costs regiondns what a hung upstream costs,
// while the names of well-behaved clients are still answered by the real
// Consul DNS behind the same address.
type soakProxy struct {
	upstream string
	udp      *net.UDPConn
	tcp      net.Listener
	// dropped counts the blackhole queries dropped.
	dropped atomic.Int64
	wg      sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// soakProxyTimeout bounds one relayed exchange with the agent.
const soakProxyTimeout = 2 * time.Second

// startSoakProxy starts a proxy for the agent's DNS address on a free
// loopback port (UDP and TCP) and stops it when the test ends.
func startSoakProxy(t testing.TB, upstream string) *soakProxy {
	t.Helper()
	p := &soakProxy{upstream: upstream, conns: map[net.Conn]struct{}{}}
	var err error
	for range startAttempts {
		addr := fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1)[0])
		if p.tcp, err = net.Listen("tcp", addr); err != nil {
			continue
		}
		ua, _ := net.ResolveUDPAddr("udp", addr)
		if p.udp, err = net.ListenUDP("udp", ua); err != nil {
			p.tcp.Close()
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("start the DNS proxy for %s: %v", upstream, err)
	}
	// The flood arrives at thousands of datagrams a second: a large receive
	// buffer keeps the relayed queries from being dropped behind it.
	_ = p.udp.SetReadBuffer(4 << 20)
	p.wg.Add(2)
	go p.serveUDP()
	go p.serveTCP()
	t.Cleanup(func() {
		p.udp.Close()
		p.tcp.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr returns the proxy's UDP and TCP address.
func (p *soakProxy) Addr() string { return p.tcp.Addr().String() }

func (p *soakProxy) serveUDP() {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if bytes.Contains(buf[:n], soakBlackholeWire) {
			p.dropped.Add(1)
			continue
		}
		query := bytes.Clone(buf[:n])
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if resp := p.relayUDP(query); resp != nil {
				_, _ = p.udp.WriteToUDP(resp, from)
			}
		}()
	}
}

// relayUDP asks the agent and returns its answer. An agent that is down
// (the port refuses) gets SERVFAIL back at once, as regiondns would see the
// refusal itself without the proxy and move on to the next agent; an agent
// that does not answer in time gets nothing.
func (p *soakProxy) relayUDP(query []byte) []byte {
	c, err := net.DialTimeout("udp", p.upstream, soakProxyTimeout)
	if err != nil {
		return soakServfail(query)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(soakProxyTimeout))
	if _, err := c.Write(query); err != nil {
		return soakServfail(query)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return soakServfail(query)
	case err != nil:
		return nil
	}
	return buf[:n]
}

// soakServfail returns a SERVFAIL answer to query, or nil when it does not
// parse.
func soakServfail(query []byte) []byte {
	var q dns.Msg
	if q.Unpack(query) != nil {
		return nil
	}
	var m dns.Msg
	m.SetRcode(&q, dns.RcodeServerFailure)
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// serveTCP relays TCP connections byte for byte: regiondns asks upstream
// over TCP only to repeat a truncated answer, never for a blackhole name.
func (p *soakProxy) serveTCP() {
	defer p.wg.Done()
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() {
				c.Close()
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			}()
			up, err := net.DialTimeout("tcp", p.upstream, soakProxyTimeout)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() { _, _ = io.Copy(up, c); up.Close(); close(done) }()
			_, _ = io.Copy(c, up)
			c.Close()
			<-done
		}()
	}
}
