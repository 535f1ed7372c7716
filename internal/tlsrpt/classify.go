package tlsrpt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Classify turns a STARTTLS handshake error into a result type (§4.3) and
// a failure reason code (free text without secrets).
func Classify(err error) (resultType, reason string) {
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case errors.As(err, &hostErr):
		return ResultCertificateHostMismatch, "name-mismatch"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ResultCertificateExpired, "certificate-expired"
	case errors.As(err, &invalid):
		return ResultCertificateNotTrusted, "certificate-invalid"
	case errors.As(err, &unknown):
		return ResultCertificateNotTrusted, "unknown-authority"
	case errors.As(err, &verify):
		return ResultCertificateNotTrusted, "verification-failed"
	case errors.As(err, &alert):
		return ResultValidationFailure, "tls-alert-" + alert.Error()
	}
	return ResultValidationFailure, "handshake-failed"
}
