// Package pipeline is the path of a message between the SMTP session and
// the queue: the checks of each stage (connection, sender, recipient,
// data), the one verdict shape they answer with, and the typed
// per-recipient plan the queue carries out.
//
// pipeline is a protocol-level package: it knows nothing of the store,
// the queue, the gateway or the configuration (a test checks). The
// gateway builds a pipeline from its configuration and runs it from its
// SMTP backend, `policy test`, the API and the console alike.
package pipeline
