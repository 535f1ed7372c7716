// Package cms writes the Cryptographic Message Syntax structures that S/MIME
// encryption needs, in DER, on golang.org/x/crypto/cryptobyte.
//
// An encrypted CMS message has two layers (RFC 5652 §6):
//
//  1. the content is encrypted once with a fresh random content-encryption
//     key (CEK): AES-256-GCM inside AuthEnvelopedData (RFC 5083, RFC 5084),
//     which authenticates the ciphertext, or AES-256-CBC inside EnvelopedData
//     (RFC 5652 §6.1, RFC 3565) for older clients, which does not;
//  2. the CEK is given to each recipient in a RecipientInfo:
//     - KeyTransRecipientInfo (§6.2.1) for RSA keys: RSAES-OAEP with SHA-256
//     and MGF1-SHA-256 (RFC 8017 §7.1), its parameters written out in full
//     as RFC 4055 §4.1 defines them (OpenSSL 3 rejects OAEP whose
//     parameters are left out or say SHA-1 for a SHA-256 key), or RSA
//     PKCS#1 v1.5 (RFC 8017 §7.2) for legacy clients;
//     - KeyAgreeRecipientInfo (§6.2.2) for elliptic-curve keys: ephemeral-
//     static ECDH, dhSinglePass-stdDH-sha256kdf-scheme (RFC 5753 §3.1), the
//     shared secret stretched by the ANSI X9.63 KDF with SHA-256 over
//     ECC-CMS-SharedInfo (RFC 5753 §7.2), and the CEK wrapped with AES-256
//     key wrap (RFC 3394, RFC 3565 §2.3.2).
//
// The encoder streams: lengths are known in advance (CBC adds one block of
// padding at most; GCM adds nothing to the ciphertext and puts its tag in
// the mac field after it), so the DER headers are written first and the
// ciphertext follows as the content is read. Memory does not grow with the
// size of the message. GCM is computed as AES-CTR plus GHASH of our own
// (NIST SP 800-38D), because crypto/cipher's AEAD wants the whole plaintext
// at once.
//
// Decrypt reads what this package (and OpenSSL) writes, for the
// organisation's own keys: KeyTransRecipientInfo with RSA and
// KeyAgreeRecipientInfo with ECDH, in either content type.
package cms
