// Package configs owns townwatch's configuration: the one YAML schema for the whole system
// (storage, the HTTP listener and the cameras with their streams, recording and motion
// settings), its defaults, strict decoding (Load, Parse), validation that reports every
// problem at once with its YAML path (Validate), the Duration and ByteSize value types, and
// camera credentials: resolving passwords from the URL, a file or the environment
// (Stream.DialURL) and keeping them out of logs, errors and API output (RedactURL).
//
// It also holds the sample configurations: townwatch.example.yaml and demo.yaml (DemoYAML,
// used by `townwatch demo`); a test loads every *.yaml here so they never drift from the
// code.
//
// Nothing here blocks or starts goroutines. Load reads one file; Validate opens password
// files only to check they exist; DialURL reads the password file or variable on each call.
// The package imports nothing else of townwatch.
package configs
