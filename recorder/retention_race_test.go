//go:build race

package recorder

// retentionRace is true under the race detector, which makes the long simulations several
// times slower: the retention's own code is instrumented, and so is the pure-Go SQLite
// under a plain go test -race (about six times slower; make test compiles it without
// instrumentation, see the Makefile). They shrink their scale (see their comments).
const retentionRace = true
