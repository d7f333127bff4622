package configs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// A camera password may sit in the stream URL, in a file or in an environment variable.
// Everything here keeps it out of what people see: errors name the field, never the value,
// and every URL meant for a person goes through RedactURL.

// DialURL returns the URL to connect to the stream with: the configured URL with the user
// name and password merged in from username and password_file or password_env (percent-
// encoded as needed). It reads the password file at every call, so a rotated password is
// picked up at the next reconnect. Errors name the field and never contain the password.
func (s Stream) DialURL() (string, error) {
	u, err := parseURL(s.URL)
	if err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	if ps := s.credentialProblems(u); len(ps) > 0 {
		return "", errors.New(ps[0].String())
	}
	user := s.Username
	if user == "" {
		user = u.User.Username()
	}
	switch {
	case s.PasswordFile != "" || s.PasswordEnv != "":
		pass, err := s.password()
		if err != nil {
			return "", err
		}
		u.User = url.UserPassword(user, pass)
	case s.Username != "":
		u.User = url.User(s.Username)
	}
	return u.String(), nil
}

// RedactedURL returns the stream URL for logs, errors and API output: a user name is kept,
// a password (from the URL, password_file or password_env) shows as "***", and so do
// password-like query parameters: rtsp://admin:***@10.0.0.21:554/Streaming/Channels/101.
func (s Stream) RedactedURL() string {
	u, err := parseURL(s.URL)
	if err != nil || u.Opaque != "" {
		// An opaque URL ("rtsp:admin:pw@cam") has no userinfo to redact, only text.
		return invalidURLPlaceholder
	}
	user := u.User.Username()
	if s.Username != "" {
		user = s.Username
	}
	_, hasPassword := u.User.Password()
	hasPassword = hasPassword || s.PasswordFile != "" || s.PasswordEnv != ""

	r := *u
	r.RawQuery = redactQuery(u.RawQuery)
	switch {
	case hasPassword:
		// URL.String would percent-encode "***", so the marker goes in afterwards: with an
		// empty password String writes "user:@", and that is the first ":@" of its output
		// because neither a scheme nor an escaped user name can contain one.
		r.User = url.UserPassword(user, "")
		return strings.Replace(r.String(), ":@", ":***@", 1)
	case user != "":
		r.User = url.User(user)
	default:
		r.User = nil
	}
	return r.String()
}

// String returns the redacted URL, so that printing a Stream (or a Camera or Config that
// holds one) with fmt never shows a password.
func (s Stream) String() string { return s.RedactedURL() }

// LogValue makes slog log a Stream as its redacted URL.
func (s Stream) LogValue() slog.Value { return slog.StringValue(s.RedactedURL()) }

// RedactURL returns raw with any password replaced by "***" (see Stream.RedactedURL).
// Input that does not parse as a URL gives a fixed placeholder, since there is no telling
// which part of it is the password.
func RedactURL(raw string) string { return Stream{URL: raw}.RedactedURL() }

const invalidURLPlaceholder = "<invalid URL>"

// secretQueryKeys are query parameters that some cameras take credentials in.
var secretQueryKeys = []string{"password", "passwd", "pass", "pwd", "secret", "token"}

// redactQuery replaces the values of password-like query parameters with "***" and leaves
// every other byte of the query as it was.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	params := strings.Split(raw, "&")
	for i, p := range params {
		key, _, hasValue := strings.Cut(p, "=")
		// A key that does not unescape cannot be checked, so its value is hidden too.
		if k, err := url.QueryUnescape(key); hasValue && (err != nil || isSecretKey(k)) {
			params[i] = key + "=***"
		}
	}
	return strings.Join(params, "&")
}

func isSecretKey(k string) bool {
	for _, s := range secretQueryKeys {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// parseURL parses a stream URL with errors that are safe to show: url.Parse quotes the whole
// input, password included, and an invalid escape quotes three of its characters.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return nil, errors.New("cannot parse URL: invalid percent-escape (write % as %25)")
	}
	return nil, fmt.Errorf("cannot parse URL: %w", err)
}

// credentialProblems reports contradictory credential settings, with paths relative to the
// stream ("password_env"). u is the parsed URL, or nil if that is unknown; checks that need
// it are then skipped. Validate reports them all; DialURL refuses to guess and returns the
// first.
func (s Stream) credentialProblems(u *url.URL) []Problem {
	var ps []Problem
	add := func(field, msg string) { ps = append(ps, Problem{Path: field, Message: msg}) }
	var urlUser string
	var urlHasPassword bool
	if u != nil {
		urlUser = u.User.Username()
		_, urlHasPassword = u.User.Password()
	}
	if s.Username != "" && urlUser != "" {
		add("username", "conflicts with the user name in url (use one)")
	}
	if urlHasPassword {
		if urlUser == "" {
			add("url", "has a password but no user name")
		}
		if s.PasswordFile != "" {
			add("password_file", "conflicts with the password in url (use one)")
		}
		if s.PasswordEnv != "" {
			add("password_env", "conflicts with the password in url (use one)")
		}
	}
	if s.PasswordFile != "" && s.PasswordEnv != "" {
		add("password_env", "conflicts with password_file (use one)")
	}
	if u != nil && s.Username == "" && urlUser == "" {
		if s.PasswordFile != "" {
			add("password_file", "needs a user name (set username)")
		}
		if s.PasswordEnv != "" {
			add("password_env", "needs a user name (set username)")
		}
	}
	return ps
}

// password reads the password from password_file or password_env; credentialProblems has
// made sure only one is set.
func (s Stream) password() (string, error) {
	return readSecret(s.PasswordFile, "password_file", s.PasswordEnv, "password_env")
}

// Credential reads a TURN server's credential from credential_file or credential_env; ""
// when neither is set (STUN needs none).
func (s ICEServer) Credential() (string, error) {
	if s.CredentialFile == "" && s.CredentialEnv == "" {
		return "", nil
	}
	return readSecret(s.CredentialFile, "credential_file", s.CredentialEnv, "credential_env")
}

// readSecret reads a secret from the environment variable env when set, else from file.
// The keys name the config fields in errors; errors never contain the secret.
func readSecret(file, fileKey, env, envKey string) (string, error) {
	if env != "" {
		p, err := passwordFromEnv(env)
		if err != nil {
			return "", fmt.Errorf("%s: %w", envKey, err)
		}
		return p, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", fileKey, err) // *fs.PathError: the path, not the content
	}
	// Editors and `echo` end files with a newline that is not part of the secret.
	p := strings.TrimRight(string(data), "\r\n")
	if p == "" {
		return "", fmt.Errorf("%s: %s is empty", fileKey, file)
	}
	return p, nil
}

func passwordFromEnv(name string) (string, error) {
	p, ok := os.LookupEnv(name)
	switch {
	case !ok:
		return "", fmt.Errorf("environment variable %s is not set", name)
	case p == "":
		return "", fmt.Errorf("environment variable %s is empty", name)
	}
	return p, nil
}

// checkPasswordFile checks that a password file can be opened and is not empty, without
// reading it: Validate (and so check-config) must not handle secrets.
func checkPasswordFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s is a directory", path)
	case st.Size() == 0:
		return fmt.Errorf("%s is empty", path)
	}
	return nil
}

// Token reads the metrics bearer token from metrics.token_file; "" when none is set.
func (m Metrics) Token() (string, error) {
	if m.TokenFile == "" {
		return "", nil
	}
	return readSecret(m.TokenFile, "metrics.token_file", "", "")
}
