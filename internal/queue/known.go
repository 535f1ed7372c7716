package queue

// KnownDomains returns up to max of the external domains mail was
// delivered to (the frequent correspondents that look-alike domains are
// compared with), in no particular order.
func (q *Queue) KnownDomains(max int) []string {
	var out []string
	q.known.Range(func(k, _ any) bool {
		if d, ok := k.(string); ok {
			out = append(out, d)
		}
		return len(out) < max
	})
	return out
}
