// Package access owns who may do what in townwatch: the fixed roles and the actions they
// allow (Allowed is the one authorization decision every HTTP route goes through), the
// password rules and Argon2id hashing, session tokens, and login throttling.
//
// It holds no accounts itself: users and sessions live in the catalog, and the HTTP layer
// (package viewer) reads them afresh for every request, so a removed grant, a disabled
// account or a logout applies to the very next request.
//
// Nothing here blocks except LoginLimiter.Check, which waits while MaxConcurrentChecks
// password checks are running (or until its context ends).
package access
