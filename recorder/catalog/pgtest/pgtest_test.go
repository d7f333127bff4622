package pgtest
import ("testing";"os";"database/sql")
func TestMain(m *testing.M) { os.Exit(Main(m.Run)) }
func TestSmoke(t *testing.T) {
	u := URL(t)
	db, err := sql.Open("pgx", u); if err != nil { t.Fatal(err) }
	defer db.Close()
	var v string
	if err := db.QueryRow("select version() || ' ' || current_setting('lc_collate')").Scan(&v); err != nil { t.Fatal(err) }
	t.Log(v, u)
}
