package resolver

import (
	"encoding/binary"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// batchClient sends the same query (with new IDs) and reads the answers in
// batches on a connected UDP socket, without allocating.
type batchClient struct {
	rc         syscall.RawConn
	id         uint16
	query      []byte
	out, in    []mmsghdr
	oiov, iiov []unix.Iovec
	queries    []byte
	answers    []byte
	base, n    int
	err        error
	sendFn     func(uintptr) bool
	recvFn     func(uintptr) bool
}

func newBatchClient(conn *net.UDPConn, batch int, query []byte) (*batchClient, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &batchClient{rc: rc, query: query,
		out: make([]mmsghdr, batch), in: make([]mmsghdr, batch),
		oiov: make([]unix.Iovec, batch), iiov: make([]unix.Iovec, batch),
		queries: make([]byte, batch*len(query)), answers: make([]byte, batch*2048)}
	for i := range batch {
		copy(c.queries[i*len(query):], query)
		c.oiov[i].Base = &c.queries[i*len(query)]
		c.oiov[i].SetLen(len(query))
		c.out[i].hdr.Iov = &c.oiov[i]
		c.out[i].hdr.SetIovlen(1)
		c.iiov[i].Base = &c.answers[i*2048]
		c.iiov[i].SetLen(2048)
		c.in[i].hdr.Iov = &c.iiov[i]
		c.in[i].hdr.SetIovlen(1)
	}
	c.sendFn, c.recvFn = c.sendmmsg, c.recvmmsg
	return c, nil
}

// send sends k queries.
func (c *batchClient) send(k int) error {
	for i := range k {
		c.id++
		binary.BigEndian.PutUint16(c.queries[i*len(c.query):], c.id)
	}
	for sent := 0; sent < k; sent += c.n {
		c.base, c.n, c.err = sent, k-sent, nil
		if err := c.rc.Write(c.sendFn); err != nil {
			return err
		}
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

func (c *batchClient) sendmmsg(fd uintptr) bool {
	n, done, err := mmsg(unix.SYS_SENDMMSG, fd, c.out[c.base:c.base+c.n], 0, "sendmmsg")
	if done {
		c.n, c.err = n, err
	}
	return done
}

// recv waits for answers and returns how many arrived.
func (c *batchClient) recv() (int, error) {
	c.n, c.err = 0, nil
	if err := c.rc.Read(c.recvFn); err != nil {
		return 0, err
	}
	return c.n, c.err
}

func (c *batchClient) recvmmsg(fd uintptr) bool {
	n, done, err := mmsg(unix.SYS_RECVMMSG, fd, c.in, unix.MSG_WAITFORONE, "recvmmsg")
	if done {
		c.n, c.err = n, err
	}
	return done
}
