package access

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for new hashes: OWASP's recommendation of 19 MiB, two passes, one
// lane. The memory is what makes guessing on GPUs costly; more would cost a small
// municipal box real memory while two logins are checked at once (MaxConcurrentChecks).
// The parameters are stored in every hash, so they can be raised later and old hashes
// still verify.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// MinPasswordLen is the shortest password accepted: 12 characters, as the access-control
// issue and NIST SP 800-63B's guidance for memorised secrets without composition rules.
const MinPasswordLen = 12

// maxPasswordLen bounds what is hashed, so a megabyte "password" cannot cost more than a
// normal one; a pass phrase of 256 characters is long enough for anybody.
const maxPasswordLen = 256

// HashPassword returns password hashed with Argon2id in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash), which carries its own parameters.
func HashPassword(password string) (string, error) {
	if len(password) > maxPasswordLen {
		return "", fmt.Errorf("password is longer than %d bytes", maxPasswordLen)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return encodeHash(argonParams{memory: argonMemoryKiB, time: argonTime, threads: argonThreads}, salt, key), nil
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

func encodeHash(p argonParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// errBadHash is a stored hash townwatch cannot read: a damaged catalog row, not a wrong
// password.
var errBadHash = errors.New("stored password hash is not an argon2id PHC string")

// maxStoredMemoryKiB bounds the memory a stored hash may ask for: 64 MiB, over three times
// what townwatch hashes with, so stronger future parameters still verify, while a
// tampered row cannot make the two concurrent checks allocate gigabytes.
const maxStoredMemoryKiB = 64 << 10

// decodeHash parses a PHC argon2id string. The parameter bounds keep a tampered row from
// making one login allocate gigabytes.
func decodeHash(encoded string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory < 8 || p.memory > maxStoredMemoryKiB || p.time < 1 || p.time > 16 || p.threads < 1 || p.threads > 16 {
		return p, nil, nil, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// CheckPassword reports whether password matches the encoded hash, in constant time with
// respect to the hash. A hash it cannot read is an error.
func CheckPassword(encoded, password string) (bool, error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > maxPasswordLen {
		password = password[:maxPasswordLen] // same cost as any other; cannot match
		salt = append([]byte("x"), salt...)
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// dummyHash is checked for a user name that does not exist, so that a login for an
// unknown account costs the same Argon2 time as a wrong password and response times do
// not tell which accounts exist. It is a constant (made once with HashPassword, with the
// parameters every account uses) rather than hashed at start-up, which cost every
// townwatch command and test binary 20 MiB and 0.2 s before doing anything.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$CwRcGYIjXyaL/SADbbBnBg$8kpVYQlqMzZaZgHCVPDx5mL+YF1OcLS1/sH7JBb/AoY"

// CheckUnknown spends the time of one password check on nothing; it always reports
// false.
func CheckUnknown(password string) {
	_, _ = CheckPassword(dummyHash, password)
}

//go:embed common-passwords.txt
var commonPasswordList string

// commonPasswords are passwords (lower case) that guessing attacks try first, and
// commonStems the words they are made of: "Policie2026!" is "policie" with a year.
var commonPasswords, commonStems = func() (map[string]bool, map[string]bool) {
	pw, stems := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(commonPasswordList))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "stem:"):
			stems[strings.TrimPrefix(line, "stem:")] = true
		default:
			pw[line] = true
		}
	}
	return pw, stems
}()

// CheckPasswordPolicy returns why password may not be used by the account name, or nil.
// The rules follow NIST SP 800-63B: a minimum length, no composition rules, and no
// password that attackers guess first (a built-in list of common passwords, the words
// they are made of with digits and symbols around them, the user name, one character
// repeated or a keyboard run).
func CheckPasswordPolicy(name, password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("password is %d characters; it must have at least %d", n, MinPasswordLen)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("password is longer than %d bytes", maxPasswordLen)
	}
	// Accents are folded so that "Strážník2024!" meets the stem "straznik": people type
	// the Czech word either way, and attackers try both.
	lower := foldAccents(strings.ToLower(password))
	if commonPasswords[lower] {
		return errors.New("password is on the list of common passwords that attackers try first")
	}
	core := strings.TrimFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	lowerName := foldAccents(strings.ToLower(name))
	if commonStems[core] || (name != "" && core == lowerName) {
		return errors.New("password is a common word or the user name with digits or symbols around it")
	}
	// A name of a few letters could turn up by chance; a longer one is the first thing
	// an attacker who knows the account tries.
	if utf8.RuneCountInString(lowerName) >= 4 && strings.Contains(lower, lowerName) {
		return errors.New("password contains the user name")
	}
	if distinctRunes(lower) < 5 {
		return errors.New("password has fewer than 5 different characters")
	}
	return nil
}

// czechAccents maps the accented letters of Czech (and the common neighbours) to their
// base letters.
var czechAccents = strings.NewReplacer(
	"á", "a", "č", "c", "ď", "d", "é", "e", "ě", "e", "í", "i", "ň", "n", "ó", "o",
	"ř", "r", "š", "s", "ť", "t", "ú", "u", "ů", "u", "ý", "y", "ž", "z", "ä", "a", "ö", "o", "ü", "u",
)

func foldAccents(s string) string { return czechAccents.Replace(s) }

func distinctRunes(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}

// RandomPassword returns a password of 20 characters from an unambiguous alphabet (no
// 0/O, 1/l/I), for the demo's accounts: about 100 bits.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
