package pipeline

import (
	"fmt"

	"sealpost/internal/policy"
)

// Registry holds the transports by the action they carry out: a policy
// action is available exactly when a transport is registered for it (hold,
// quarantine and reject need none: the gateway keeps or refuses the
// message itself). T is the queue's transport type; the registry only
// names it, so that pipeline needs no queue.
type Registry[T any] struct {
	byAction map[policy.Action]entry[T]
}

type entry[T any] struct {
	route     string
	transport T
}

// NewRegistry returns an empty registry.
func NewRegistry[T any]() *Registry[T] {
	return &Registry[T]{byAction: map[policy.Action]entry[T]{}}
}

// Register sets the transport, on the queue route route, that carries out
// a. Registering an action twice is a wiring error.
func (r *Registry[T]) Register(a policy.Action, route string, t T) error {
	if a.Stops() {
		return fmt.Errorf("action %s is carried out by the gateway, not by a transport", a)
	}
	if _, ok := r.byAction[a]; ok {
		return fmt.Errorf("a transport for %s is already registered", a)
	}
	r.byAction[a] = entry[T]{route: route, transport: t}
	return nil
}

// Available reports whether a can be carried out here: a transport is
// registered for it, or the gateway does it itself.
func (r *Registry[T]) Available(a policy.Action) bool {
	if a.Stops() {
		return true
	}
	_, ok := r.byAction[a]
	return ok
}

// Route returns the queue route of a's transport.
func (r *Registry[T]) Route(a policy.Action) (string, bool) {
	e, ok := r.byAction[a]
	return e.route, ok
}

// Routes returns the transport of every route, for the queue.
func (r *Registry[T]) Routes() map[string]T {
	m := make(map[string]T, len(r.byAction))
	for _, e := range r.byAction {
		m[e.route] = e.transport
	}
	return m
}
