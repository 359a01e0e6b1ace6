package watch

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Reads of Consul's HTTP API, sent straight through the watch's transport.
//
// A watcher holds a blocking query per watched resource, thousands of them
// for a large fleet, and a parked query keeps the stack of the goroutine
// that waits for it: through consul/api and net/http's Client, a call chain
// that needs an 8 KiB stack, and their request objects besides. A read made
// here parks a few frames deep, on a stack half that size, and its request
// shares its headers with every other request of its path. consul/api still
// resolves each agent's address and token (see newPath); its types decode
// the answers, as consul/api itself decodes them.

// endpoint is how to reach one agent: set once by newPath, read-only after.
type endpoint struct {
	tr     *pollTransport
	scheme string
	host   string
	// header is sent with every request to the agent (the token, basic
	// auth): shared by all of them, so never modified.
	header http.Header
	// extra are query parameters every request carries (namespace,
	// partition), "" or starting with "&".
	extra string
}

// newPath returns the path to the agent at addr, with the Consul
// environment (CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL, ...) applied as
// consul/api applies it and tokenFile, when set, overriding the
// environment's token.
func newPath(addr, tokenFile string, tr *pollTransport) (path, error) {
	cfg := clientConfig(addr, tokenFile)
	cfg.HttpClient = &http.Client{Transport: tr}
	// NewClient resolves cfg in place: scheme, address, token (read from
	// the token file). Its errors name the token file, never the token.
	if _, err := api.NewClient(cfg); err != nil {
		return path{}, err
	}
	ep := &endpoint{tr: tr, scheme: cfg.Scheme, host: cfg.Address, header: http.Header{}}
	if cfg.Token != "" {
		ep.header.Set("X-Consul-Token", cfg.Token)
	}
	if cfg.HttpAuth != nil {
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(cfg.HttpAuth.Username, cfg.HttpAuth.Password)
		ep.header.Set("Authorization", r.Header.Get("Authorization"))
	}
	if cfg.Namespace != "" {
		ep.extra += "&ns=" + url.QueryEscape(cfg.Namespace)
	}
	if cfg.Partition != "" {
		ep.extra += "&partition=" + url.QueryEscape(cfg.Partition)
	}
	return path{ep: ep, addr: addr}, nil
}

// query is one read: at index (0: do not block) for up to wait.
type query struct {
	index uint64
	wait  time.Duration
	// params are more query parameters, "" or starting with "&".
	params string
}

// start sends GET apiPath with q to p's agent and returns; done gets the
// answer, on the goroutine that waited for it (see pollTransport.Go): a
// success (2xx), a 404 when notFound says it is an answer (a KV key that
// does not exist), or an api.StatusError for any other status, as
// consul/api reports it. done reads and closes the body of the answer
// (decode).
//
// The request has no context: a parked one would register with its
// context, for each request, what it takes to interrupt it. sent gets each
// exchange (see pollTransport.Go), which the caller aborts to stop it.
func (p path) start(apiPath string, q query, notFound bool, sent func(*exchange), done func(*http.Response, error)) {
	ep := p.ep
	var raw strings.Builder
	raw.Grow(64 + len(q.params) + len(ep.extra))
	if q.index != 0 {
		raw.WriteString("&index=")
		raw.WriteString(strconv.FormatUint(q.index, 10))
	}
	if q.wait != 0 {
		// As consul/api writes it: whole milliseconds.
		raw.WriteString("&wait=")
		raw.WriteString(strconv.FormatInt(max(q.wait.Milliseconds(), 1), 10))
		raw.WriteString("ms")
	}
	if p.dc != "" {
		raw.WriteString("&dc=")
		raw.WriteString(url.QueryEscape(p.dc))
	}
	raw.WriteString(q.params)
	raw.WriteString(ep.extra)
	req := &http.Request{
		Method: http.MethodGet,
		URL: &url.URL{Scheme: ep.scheme, Host: ep.host, Path: apiPath,
			RawQuery: strings.TrimPrefix(raw.String(), "&")},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: ep.header,
		Host:   ep.host,
	}
	ep.tr.Go(req, sent, func(resp *http.Response, err error) {
		if err == nil && resp.StatusCode/100 != 2 && (!notFound || resp.StatusCode != http.StatusNotFound) {
			// The transport kept the first errorBodyKeep bytes of it.
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp, err = nil, api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
		}
		done(resp, err)
	})
}

// index returns the X-Consul-Index of an answer; 0 when it has none or it
// does not parse, as consul/api reads it.
func index(resp *http.Response) uint64 {
	n, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return n
}

// decode reads the JSON answer of resp into out, then the rest of the body
// (so that the connection can carry the next request), and closes it. A 404
// leaves out as it is.
func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, resp.Body)
	return err
}
