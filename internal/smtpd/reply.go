package smtpd

import "fmt"

// Reply is an SMTP reply with its enhanced status code (RFC 3463).
type Reply struct {
	Code int
	Enh  string // e.g. "5.7.1"; "" for none
	Text string
}

func (r *Reply) Error() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enh, r.Text) }

// Temporary reports whether r is a 4xx reply: the client keeps the message
// and tries again.
func (r *Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// NewReply returns a reply; enh is "x.y.z" or "".
func NewReply(code int, enh, text string) *Reply { return &Reply{Code: code, Enh: enh, Text: text} }

func reply(code int, enh, text string) *Reply { return &Reply{Code: code, Enh: enh, Text: text} }

// The named replies a backend gives for the usual cases, so that every
// path answers a condition with the same code and words. They are shared:
// never modify one, copy it (NewReply) to change the text.
var (
	// ReplyTempFail: something on our side failed (database, a check);
	// RFC 3463 4.3.0.
	ReplyTempFail = reply(451, "4.3.0", "Temporary failure; try again later")
	// ReplyStorage: the message could not be stored (RFC 3463 4.3.1).
	ReplyStorage = reply(452, "4.3.1", "Insufficient system storage; try again later")
	// ReplyAuthRequired: the listener relays only after AUTH (RFC 4954 §6).
	ReplyAuthRequired = reply(530, "5.7.0", "Authentication required")
	// ReplyRelayDenied: the recipient is not one this listener takes mail
	// for (RFC 5321 §3.6.2, no open relay).
	ReplyRelayDenied = reply(550, "5.7.1", "Relaying denied")
	// ReplySenderNotPermitted: the login may not use this MAIL FROM.
	ReplySenderNotPermitted = reply(550, "5.7.1", "Sender address not permitted for this login")
	// ReplyForeignSender: the sender's domain is not the organisation's.
	ReplyForeignSender = reply(550, "5.7.1", "Sender domain is not served by this gateway")
	// ReplyLoop: too many Received fields (RFC 5321 §6.3).
	ReplyLoop = reply(554, "5.4.6", "Too many hops; the message is looping")
	// ReplyAuthTemp: the user store could not be asked.
	ReplyAuthTemp = reply(454, "4.7.0", "Temporary authentication failure")
	// ReplyAuthLocked: too many failed logins from the client or for the user.
	ReplyAuthLocked = reply(454, "4.7.0", "Too many failed attempts; try again later")
	// ReplyAuthInvalid: wrong user name or password (RFC 4954 §6).
	ReplyAuthInvalid = reply(535, "5.7.8", "Authentication credentials invalid")
	// ReplyPolicyReject refuses a message by the organisation's policy;
	// backends copy it with the reference the operator looks up.
	ReplyPolicyReject = reply(550, "5.7.1", "Message refused by the organisation's mail policy")
)

// TooBig is the answer to a message over limit bytes (RFC 1870, 5.3.4).
func TooBig(limit int64) *Reply {
	return reply(552, "5.3.4", fmt.Sprintf("Message too big; the limit is %d bytes", limit))
}

// Accepted is the 250 for a message made durable under id.
func Accepted(id string) *Reply { return reply(250, "2.0.0", "OK queued as "+id) }
