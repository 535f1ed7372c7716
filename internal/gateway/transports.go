package gateway

import (
	"errors"

	"sealpost/internal/config"
	"sealpost/internal/pipeline"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
)

// transportRegistry is the one list of which policy action is carried out
// by which transport, on which queue route, for cfg. An action with no
// transport here is not available: the policy falls back (to the portal,
// or a hold) and says so. The CLI and the rules of a reload use it with
// nil transports, for availability only.
//
// A transport for a new action is registered here and nowhere else.
//
// An error (an action registered twice) is a wiring bug here; Start
// refuses to run with it.
func transportRegistry(cfg *config.Config, t actionTransports) (*pipeline.Registry[queue.Transport], error) {
	r := pipeline.NewRegistry[queue.Transport]()
	errs := []error{
		r.Register(policy.Deliver, queue.RouteOutbound, t.outbound),
		r.Register(policy.RequireTLS, queue.RouteOutbound, t.outbound), // the SMTP transport, TLS verified
	}
	if cfg.Portal.Enabled {
		errs = append(errs, r.Register(policy.Portal, queue.RoutePortal, t.portal))
	}
	if cfg.SMIME.Enabled {
		errs = append(errs, r.Register(policy.EncryptSMIME, queue.RouteSMIME, t.smime))
	}
	if cfg.Encryption.Enabled {
		errs = append(errs, r.Register(policy.EncryptPGP, queue.ActionPGP, t.pgp), r.Register(policy.Encrypt, queue.ActionEncrypt, t.encrypt))
	}
	return r, errors.Join(errs...)
}

// actionTransports are the transports the registry hands out (nil for
// availability only).
type actionTransports struct {
	outbound, portal, smime queue.Transport
	encrypt, pgp            queue.Transport // actions encrypt and encrypt-pgp (internal/encrypt)
}

// available reports which policy actions can be carried out under cfg:
// those with a registered transport, and those the gateway does itself.
func available(cfg *config.Config) func(policy.Action) bool {
	r, _ := transportRegistry(cfg, actionTransports{}) // Start reports a wiring error
	return r.Available
}
