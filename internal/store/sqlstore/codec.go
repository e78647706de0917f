package sqlstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// ms encodes a time as unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS decodes ms; 0 is the zero time, anything else is in UTC.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// durMS encodes a duration as milliseconds.
func durMS(d time.Duration) int64 { return d.Milliseconds() }

func fromDurMS(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// joinList space-joins a scope-like list. Elements that are empty or
// contain whitespace could not be split back, so they are an error.
func joinList(field string, a []string) (string, error) {
	for _, s := range a {
		if s == "" || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
			return "", fmt.Errorf("%s: value %q is empty or contains whitespace", field, s)
		}
	}
	return strings.Join(a, " "), nil
}

// splitList reverses joinList; the empty string is a nil list.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// jsonList encodes a list that may contain any characters (redirect URIs).
func jsonList(a []string) string {
	if len(a) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(a) // []string always marshals
	return string(b)
}

func fromJSONList(s string) ([]string, error) {
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, fmt.Errorf("decode list %q: %w", s, err)
	}
	if len(a) == 0 {
		return nil, nil
	}
	return a, nil
}

// blob stores an empty byte slice as NULL so it reads back as nil on both
// engines (pgx would otherwise return an empty non-nil slice).
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// encoder collects the first list-encoding error so that record-to-row
// functions stay linear.
type encoder struct{ err error }

func (e *encoder) list(field string, a []string) string {
	s, err := joinList(field, a)
	if err != nil && e.err == nil {
		e.err = err
	}
	return s
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// table describes a table's columns in the order its row functions use;
// cols[0] is the primary key.
type table struct {
	name string
	cols []string
}

func (t table) colList() string { return strings.Join(t.cols, ", ") }

// qualified is colList with every column prefixed by alias, for joins.
func (t table) qualified(alias string) string {
	q := make([]string, len(t.cols))
	for i, c := range t.cols {
		q[i] = alias + "." + c
	}
	return strings.Join(q, ", ")
}

func (t table) insertSQL() string {
	return "INSERT INTO " + t.name + " (" + t.colList() + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?, ", len(t.cols)), ", ") + ")"
}

// selectSQL selects every column; where is appended verbatim.
func (t table) selectSQL(where string) string {
	return "SELECT " + t.colList() + " FROM " + t.name + " " + where
}

// updateSQL sets every column but the key, and takes the key last.
func (t table) updateSQL() string {
	set := make([]string, 0, len(t.cols)-1)
	for _, c := range t.cols[1:] {
		set = append(set, c+" = ?")
	}
	return "UPDATE " + t.name + " SET " + strings.Join(set, ", ") + " WHERE " + t.cols[0] + " = ?"
}

// updateArgs reorders insert arguments for updateSQL: non-key columns,
// then the key.
func updateArgs(args []any, key string) []any {
	out := make([]any, 0, len(args))
	out = append(out, args[1:]...)
	return append(out, key)
}
