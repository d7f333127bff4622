//go:build race

package recorder

// retentionRace is true under the race detector, which makes the long simulations several
// times slower: the retention's own code is instrumented, and so is the pure-Go SQLite
// (make test compiles part of it without instrumentation, see RACE_EXEMPT in the
// Makefile; a plain go test -race does not). They shrink their scale (see their comments).
const retentionRace = true
