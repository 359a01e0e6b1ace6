package e2e

// The hostile TCP clients of the soak: connections that pipeline huge
// queries for names the upstream never answers, and connections that are
// opened and left idle. (The hostile UDP traffic, the flood and the
// oversize datagrams, runs on udpClient.)

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// soakBigTCP is the shape of the huge-query connections.
type soakBigTCP struct {
	// Conns connections, each sending PerRound queries of Size octets in a
	// row every Round, then reading what comes back until Timeout.
	Conns, PerRound, Size int
	Round, Timeout        time.Duration
}

// runBigTCP keeps shape.Conns connections from src to server sending huge
// pipelined queries until ctx ends. A round's query counts as answered
// when any answer comes back for it; a connection that fails is dialled
// again at the next round.
func runBigTCP(ctx context.Context, wg *sync.WaitGroup, class *soakClass, src, server string, shape soakBigTCP) {
	for range shape.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			// One query, patched before each write: its ID and the random
			// label that opens the name (offset 13, after the header and
			// the label's length octet).
			msg := soakPadded(soakBlackholeName(rng), shape.Size)
			frame := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
			frame = append(frame, msg...)
			var conn net.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for {
				start := time.Now()
				if conn == nil {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: shape.Timeout}
					if c, err := d.DialContext(ctx, "tcp", server); err == nil {
						conn = c
						// The end of the soak interrupts a blocked write or read.
						context.AfterFunc(ctx, func() { c.Close() })
					}
				}
				if conn != nil && !bigTCPRound(class, conn, frame, rng, shape) {
					conn.Close()
					conn = nil
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(start.Add(shape.Round))):
				}
			}
		}()
	}
}

// bigTCPRound writes one round of queries on conn and reads the answers;
// it reports whether the connection is still usable.
func bigTCPRound(class *soakClass, conn net.Conn, frame []byte, rng *rand.Rand, shape soakBigTCP) bool {
	_ = conn.SetDeadline(time.Now().Add(shape.Timeout))
	sent := 0
	for ; sent < shape.PerRound; sent++ {
		binary.BigEndian.PutUint16(frame[2:], uint16(rng.Uint32()))
		const hex = "0123456789abcdef"
		for j := range 16 {
			frame[2+13+j] = hex[rng.IntN(16)]
		}
		if _, err := conn.Write(frame); err != nil {
			break
		}
	}
	class.sent.Add(int64(sent))
	got := 0
	for got < sent {
		if _, err := readFrame(conn); err != nil {
			break
		}
		got++
	}
	class.ok.Add(int64(got))
	class.failed.Add(int64(sent - got))
	return sent == shape.PerRound && got == sent
}

// runIdleTCP keeps n connections from src to server open without sending
// anything until ctx ends; one the server closes is opened again at once.
// Sent counts the connections opened; Open the ones held.
func runIdleTCP(ctx context.Context, wg *sync.WaitGroup, class *soakClass, src, server string, n int) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for ctx.Err() == nil {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
				conn, err := d.DialContext(ctx, "tcp", server)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				class.sent.Add(1)
				class.open.Add(1)
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				for {
					if _, err := conn.Read(buf); err != nil {
						break
					}
				}
				stop()
				conn.Close()
				class.open.Add(-1)
			}
		}()
	}
}
