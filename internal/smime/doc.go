// Package smime turns a message into S/MIME 4.0 (RFC 8551) for recipients
// who hold a certificate, and decides which certificate may be used.
//
// Sending encrypted S/MIME takes three steps:
//
//  1. Choose a certificate for each recipient (Chooser): the candidates
//     from every CertSource whose subjectAltName rfc822Name is the address
//     (RFC 8550 §3; the subject's emailAddress only when configured, for
//     older CAs), whose key can be encrypted to and whose keyUsage allows it
//     (RFC 8550 §4.4.2), that are within their validity period, that chain
//     to a configured trust anchor with extKeyUsage emailProtection allowed
//     along the chain (RFC 8550 §4.4.4, RFC 5280 §6), and that no cached
//     CRL lists as revoked (RFC 5280 §6.3). Each refusal keeps its reason,
//     so "why did this go to the portal" has an answer.
//  2. Build the inner MIME entity: the message's Content-* header fields
//     and body (RFC 8551 §3.1), optionally signed first as
//     multipart/signed with application/pkcs7-signature (§3.5).
//  3. Encrypt it with package cms to every chosen certificate and wrap it
//     as application/pkcs7-mime, smime-type authEnveloped-data (AES-GCM,
//     §3.2.2) or enveloped-data (AES-CBC, for older clients), base64
//     encoded, under the message's other header fields.
//
// The body is streamed: memory stays bounded whatever the message size
// (signing, which needs the whole entity, is the exception).
//
// This package knows nothing of the queue, the store or the configuration:
// the gateway gives it sources, anchors and a revocation cache.
package smime
