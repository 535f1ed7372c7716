package report

import "time"

// DefaultFrom is the start of the usage report's period when none is
// given: the 1st (UTC) of the month eleven months before to's, so that the
// report covers to's calendar month and the eleven before it, twelve
// months. The CLI, the console and the API all use it.
func DefaultFrom(to time.Time) time.Time {
	// From the 1st of to's month: AddDate on the 31st would overflow into
	// the next month (31 April is 1 May).
	y, m, _ := to.UTC().Date()
	return time.Date(y, m-11, 1, 0, 0, 0, 0, time.UTC)
}

// LastDay is the last day a period ending (exclusively) at to includes, as
// pages show it.
func LastDay(to time.Time) string {
	return to.Add(-time.Millisecond).UTC().Format("2006-01-02")
}

// FileName is the name of the CSV of the report over [from, to), the same
// wherever it is downloaded: usage-2026-11.csv for one calendar month,
// otherwise usage-FIRST-LAST.csv with the first and last days included
// (usage-2026-01-01-2026-12-01.csv), the days the page shows.
func FileName(from, to time.Time) string {
	f, t := from.UTC(), to.UTC()
	if f.Day() == 1 && f.Hour() == 0 && f.Minute() == 0 && f.Second() == 0 && f.Nanosecond() == 0 && f.AddDate(0, 1, 0).Equal(t) {
		return "usage-" + f.Format("2006-01") + ".csv"
	}
	return "usage-" + f.Format("2006-01-02") + "-" + LastDay(t) + ".csv"
}
