package console

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpPeriod is the time step of the codes (RFC 6238 §4: X = 30 seconds).
const totpPeriod = 30

// useTOTP checks code against secret and spends it: RFC 6238 §5.2 says a
// verifier must not accept the second attempt of the same OTP after a
// successful validation, so the step of each accepted code is stored and
// a code of that step or an earlier one is refused afterwards (someone who
// watched the code being typed cannot use it in the same 30 seconds). One
// step either side is accepted for clock drift (§6).
func (s *Service) useTOTP(ctx context.Context, user, secret, code string) (bool, error) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return false, nil
	}
	now := time.Now()
	var matched int64 = -1
	for _, d := range []int64{-1, 0, 1} {
		at := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = at.Unix() / totpPeriod
		}
	}
	if matched < 0 {
		return false, nil
	}
	return s.Store.UseTOTPStep(ctx, user, matched)
}
