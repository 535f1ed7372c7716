package policy

import "fmt"

// Action is what happens to a message for one recipient. Actions are
// ordered by how much they protect the message: when several rules match,
// the greatest wins.
type Action int

// The actions of INTERFACE.md, least protective first.
const (
	Deliver      Action = iota // deliver as usual (TLS when the next hop offers it)
	RequireTLS                 // deliver only over TLS with a verified certificate
	Encrypt                    // encrypt to the recipient's key, OpenPGP or S/MIME (operator's preference)
	EncryptSMIME               // encrypt to the recipient's S/MIME certificate
	EncryptPGP                 // encrypt to the recipient's OpenPGP key
	Portal                     // seal into the secure portal and notify the recipient
	Hold                       // wait for the sender to confirm or cancel
	Quarantine                 // keep for the operator
	Reject                     // refuse the message (550 5.7.1)
)

var actionNames = [...]string{"deliver", "require-tls", "encrypt", "encrypt-smime", "encrypt-pgp", "portal", "hold", "quarantine", "reject"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// ParseAction returns the action named s.
func ParseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// ActionNames lists the valid action names, least protective first.
func ActionNames() []string { return append([]string(nil), actionNames[:]...) }

// Stops says whether the action keeps the message from leaving at once.
func (a Action) Stops() bool { return a >= Hold }
