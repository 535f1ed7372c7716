package config

import (
	"testing"
	"time"
)

func TestDurationWords(t *testing.T) {
	test := func(d time.Duration, want string) {
		t.Helper()
		if got := DurationWords(d); got != want {
			t.Errorf("DurationWords(%s) = %q, want %q", d, got, want)
		}
	}
	test(15*time.Minute, "15 minutes")
	test(time.Hour, "1 hour")
	test(90*time.Minute, "1 hour 30 minutes")
	test(7*24*time.Hour, "7 days")
	test(72*time.Hour, "3 days")
	test(25*time.Hour, "1 day 1 hour")
	test(time.Minute, "1 minute")
	test(30*time.Second, "30 seconds")
	test(0, "0 seconds")
}
