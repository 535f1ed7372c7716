package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// addColumns brings a database made by an older version up to the schema:
// each "table column declaration" is added unless the table has the column
// already (asked of SQLite, not guessed from an ALTER error, so that a
// real failure, such as a full disk or a locked file, stops the start
// instead of leaving a column missing).
func addColumns(ctx context.Context, db *sql.DB, cols []string) error {
	have := map[string]map[string]bool{}
	for _, c := range cols {
		table, rest, _ := strings.Cut(c, " ")
		column, _, _ := strings.Cut(rest, " ")
		if have[table] == nil {
			names, err := tableColumns(ctx, db, table)
			if err != nil {
				return err
			}
			have[table] = names
		}
		if have[table][column] {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+rest); err != nil {
			return fmt.Errorf("adding column %s.%s: %w", table, column, err)
		}
		have[table][column] = true
	}
	return nil
}

func tableColumns(ctx context.Context, db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out[name] = true
	}
	return out, rows.Err()
}
