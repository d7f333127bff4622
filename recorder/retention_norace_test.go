//go:build !race

package recorder

// retentionRace is true under the race detector; see retention_race_test.go.
const retentionRace = false
