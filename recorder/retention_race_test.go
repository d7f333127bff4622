//go:build race

package recorder

// retentionRace is true under the race detector, which makes the pure-Go SQLite about
// twenty times slower: the long simulations shrink their scale (see their comments).
const retentionRace = true
