package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/regiondns/regiondns/engine"
	"github.com/regiondns/regiondns/watch"
	"github.com/regiondns/regiondns/zones"
)

// ctlTimeout bounds one request of regiondns ctl, to Consul or the server.
const ctlTimeout = 10 * time.Second

// maxStateBody bounds the /debug/state document ctl reads.
const maxStateBody = 64 << 20

// consulPath is one way to a region's Consul KV: an agent, and the
// datacenter to name when the agent is the other region's.
type consulPath struct {
	addr string
	dc   string
	kv   *api.KV
}

// paths returns the ways to region r's KV, as the server reads it: its own
// agents, then the other region's asking for r's datacenter, each with r's
// token file over the Consul environment's token.
func (c *ctl) paths(r *zones.Region) ([]consulPath, error) {
	var out []consulPath
	add := func(addrs []string, dc string) error {
		for _, addr := range addrs {
			client, err := watch.NewClient(addr, r.TokenFile)
			if err != nil {
				return fmt.Errorf("region %s: consul_http %q: %w", r.Name, addr, err)
			}
			out = append(out, consulPath{addr: addr, dc: dc, kv: client.KV()})
		}
		return nil
	}
	if err := add(r.ConsulHTTP, ""); err != nil {
		return nil, err
	}
	if other := c.cfg.Other(r); other != nil {
		if err := add(other.ConsulHTTP, r.Datacenter); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeAll writes value at key in every region's KV (nil value: deletes
// the key), the main region first: Consul KV belongs to a datacenter, and
// the server reads the standby region's keys while the main one's cannot
// be read. Every region is tried; the error names those that failed.
func (c *ctl) writeAll(key string, value []byte) error {
	verb := "wrote"
	if value == nil {
		verb = "removed"
	}
	var errs []error
	for _, r := range []*zones.Region{c.cfg.Main(), c.cfg.Standby()} {
		via, err := c.write(r, key, value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.out, "%s %s in region %s (datacenter %s, via %s)\n", verb, key, r.Name, r.Datacenter, via)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", key, errors.Join(errs...))
	}
	return nil
}

// write writes or deletes key in region r through the first path that
// answers, and returns that path.
func (c *ctl) write(r *zones.Region, key string, value []byte) (string, error) {
	paths, err := c.paths(r)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, p := range paths {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		q := (&api.WriteOptions{Datacenter: p.dc}).WithContext(ctx)
		if value == nil {
			_, err = p.kv.Delete(key, q)
		} else {
			_, err = p.kv.Put(&api.KVPair{Key: key, Value: value}, q)
		}
		cancel()
		via := p.addr
		if p.dc != "" {
			via += "?dc=" + p.dc
		}
		if err == nil {
			return via, nil
		}
		errs = append(errs, fmt.Errorf("via %s: %s", via, c.red.Error(err)))
	}
	return "", fmt.Errorf("region %s: %w", r.Name, errors.Join(errs...))
}

// readKeys reads the control keys as the server does: the main region's,
// or the standby region's when the main one's cannot be read.
func (c *ctl) readKeys() (api.KVPairs, *zones.Region, error) {
	var errs []error
	for _, r := range []*zones.Region{c.cfg.Main(), c.cfg.Standby()} {
		paths, err := c.paths(r)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range paths {
			ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
			pairs, _, err := p.kv.List(c.cfg.ControlKeyPrefix()+"/", (&api.QueryOptions{Datacenter: p.dc}).WithContext(ctx))
			cancel()
			if err == nil {
				return pairs, r, nil
			}
			errs = append(errs, fmt.Errorf("region %s via %s: %s", r.Name, p.addr, c.red.Error(err)))
		}
	}
	return nil, nil, errors.Join(errs...)
}

// checkServer returns the server's state of cluster label, nil without
// --server; a server that does not have the cluster is an error.
func (c *ctl) checkServer(label string) (*engine.ClusterState, error) {
	if c.o.server == "" {
		return nil, nil
	}
	return c.serverCluster(label)
}

// serverCluster reads the server's state of cluster label.
func (c *ctl) serverCluster(label string) (*engine.ClusterState, error) {
	st, err := c.serverState(label)
	if err != nil {
		return nil, err
	}
	if len(st.Clusters) != 1 || st.Clusters[0].Label != label {
		return nil, fmt.Errorf("server %s: no state of cluster %s", c.o.server, label)
	}
	return &st.Clusters[0], nil
}

// serverState reads the server's /debug/state, of cluster label alone
// unless label is "".
func (c *ctl) serverState(label string) (*engine.State, error) {
	u := c.o.server + "/debug/state"
	if label != "" {
		u += "?cluster=" + url.QueryEscape(label)
	}
	client := &http.Client{Timeout: ctlTimeout}
	resp, err := client.Get(u)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStateBody))
	if err != nil {
		return nil, fmt.Errorf("server: GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && label != "":
		return nil, fmt.Errorf("server %s: cluster %q is not configured there (%s)", c.o.server, label, strings.TrimSpace(string(body)))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("server: GET %s: %s", u, resp.Status)
	}
	var st engine.State
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("server: GET %s: %w", u, err)
	}
	return &st, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only ever called on plain structs
	}
	return b
}
