//go:build !linux

package watch

import "net/http"

// parkedWait is a parked exchange; without epoll none is.
type parkedWait struct{}

func (*parkedWait) wake() {}

// park reports false: without epoll every exchange waits on a goroutine.
func park(*exchange, func(*http.Response, error)) bool { return false }

// parkedCount is how many exchanges are parked now: none.
func parkedCount() int { return 0 }
