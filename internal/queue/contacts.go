package queue

import (
	"context"
	"database/sql"
	"strings"
)

// unknown appends domain to list unless it is known or listed already.
func (q *Queue) unknown(list []string, domain string) []string {
	if domain == "" {
		return list
	}
	if _, ok := q.known.Load(domain); ok {
		return list
	}
	for _, d := range list {
		if d == domain {
			return list
		}
	}
	return append(list, domain)
}

// MarkContacted records the domains of the external addresses among rcpts
// as known (policy: first-contact): the sender confirmed a held message
// to them, so the next message there is no first contact either.
func (q *Queue) MarkContacted(ctx context.Context, rcpts []string) error {
	var doms []string
	for _, r := range rcpts {
		if q.route(r) == RouteOutbound {
			doms = q.unknown(doms, strings.ToLower(domainOf(r)))
		}
	}
	if len(doms) == 0 {
		return nil
	}
	now := q.now()
	err := q.committer.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return q.store.AddContacts(ctx, tx, doms, now)
	}, "", nil)
	if err != nil {
		return err
	}
	for _, d := range doms {
		q.known.Store(d, true)
	}
	return nil
}
