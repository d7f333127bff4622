package pgtest

import (
	"database/sql"
	"net/url"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m.Run)) }

// Each URL is its own empty database on 127.0.0.1, sorting text by bytes.
func TestURLGivesFreshDatabases(t *testing.T) {
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	if u, err := url.Parse(a); err != nil || u.Hostname() != "127.0.0.1" {
		t.Errorf("URL %s is not on 127.0.0.1 (%v)", a, err)
	}
	db, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE x (s TEXT); INSERT INTO x VALUES ('b'), ('B'), ('á'), ('a')`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT s FROM x ORDER BY s`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		got = append(got, s)
	}
	if want := []string{"B", "a", "b", "á"}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("ORDER BY gave %q, want byte order %q", got, want)
	}
	other, err := sql.Open("pgx", b)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	if err := other.QueryRow(`SELECT COUNT(*) FROM pg_tables WHERE tablename = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the second database sees the first one's table (%d, %v)", n, err)
	}
}
