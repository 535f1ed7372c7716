package report

import (
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if got := DefaultFrom(time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)); !got.Equal(day("2026-01-01")) {
		t.Errorf("default from %v", got)
	}
	if got := DefaultFrom(day("2027-03-31")); !got.Equal(day("2026-04-01")) {
		t.Errorf("default from %v", got)
	}
	test := func(from, to time.Time, want string) {
		t.Helper()
		if got := FileName(from, to); got != want {
			t.Errorf("FileName(%v, %v) = %q, want %q", from, to, got, want)
		}
	}
	test(day("2026-11-01"), day("2026-12-01"), "usage-2026-11.csv")
	test(day("2026-11-01"), day("2026-11-30"), "usage-2026-11-01-2026-11-29.csv")
	test(day("2026-04-01"), day("2027-04-01"), "usage-2026-04-01-2027-03-31.csv")
	test(day("2026-01-01"), time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC), "usage-2026-01-01-2026-12-01.csv")
}
