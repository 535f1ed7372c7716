package config

import (
	"fmt"
	"strings"
	"time"
)

// DurationWords writes a duration as people read it in a mail or on a
// page: "15 minutes", "1 hour", "1 hour 30 minutes", "7 days". Seconds
// are shown only for durations under a minute; FormatDuration is the
// config file's spelling ("15m", "7d").
func DurationWords(d time.Duration) string {
	if d < time.Minute {
		return unit(int64((d+time.Second/2)/time.Second), "second")
	}
	d = (d + time.Minute/2).Truncate(time.Minute)
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, d := d/time.Hour, d%time.Hour
	minutes := d / time.Minute
	var parts []string
	for _, p := range []struct {
		n    int64
		name string
	}{{int64(days), "day"}, {int64(hours), "hour"}, {int64(minutes), "minute"}} {
		if p.n > 0 {
			parts = append(parts, unit(p.n, p.name))
		}
	}
	return strings.Join(parts, " ")
}

func unit(n int64, name string) string {
	if n == 1 {
		return "1 " + name
	}
	return fmt.Sprintf("%d %ss", n, name)
}
