package tollgate

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// roundRobin is the service config that spreads calls over every ready
// address instead of grpc's default of sticking to the first one.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// fleetSchemes numbers the resolvers of fleet clients: each client has its
// own, so two clients in one process never share an address list.
var fleetSchemes atomic.Uint64

// fleetAddrs splits a fleet target, "host1:port,host2:port,...", into its
// addresses. A target without a comma is not a fleet: nil, nil.
func fleetAddrs(target string) ([]string, error) {
	if !strings.Contains(target, ",") {
		return nil, nil
	}
	var addrs []string
	for _, a := range strings.Split(target, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("fleet address %q: want host:port: %w", a, err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("fleet target %q names no address", target)
	}
	return addrs, nil
}

// fleetDial returns the target and dial options that balance calls round
// robin over addrs, the replicas of a fleet. Each address keeps its own host
// as the TLS server name, so every replica's certificate is checked against
// the name it was dialled by.
func fleetDial(addrs []string) (string, []grpc.DialOption) {
	r := manual.NewBuilderWithScheme(fmt.Sprintf("tollgate-fleet-%d", fleetSchemes.Add(1)))
	state := resolver.State{Addresses: make([]resolver.Address, len(addrs))}
	for i, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		state.Addresses[i] = resolver.Address{Addr: a, ServerName: host}
	}
	r.InitialState(state)
	return r.Scheme() + ":///fleet", []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(roundRobin),
	}
}

// allLoopback reports whether every address of a fleet is on this machine.
func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		if !isLoopback(a) {
			return false
		}
	}
	return true
}
