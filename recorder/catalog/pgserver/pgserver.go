// Package pgserver runs a throwaway PostgreSQL server for tests and the cluster demo: a
// cluster made by initdb in a temporary directory and run by pg_ctl on 127.0.0.1 (a free
// port) with a unix socket directory of its own, so it never meets another PostgreSQL on
// the machine. Stop removes every file it made.
//
// PostgreSQL refuses to run as root, so as root the binaries run as the postgres user
// (runuser), which owns the temporary directory.
package pgserver

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// BinDir is where Debian's postgresql-15 package puts initdb, pg_ctl and postgres.
// PGTEST_BINDIR overrides it (another version or distribution).
var BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running throwaway cluster.
type Server struct {
	dir  string // data, socket and log live under it; removed by Stop
	port int
	// asUser is the account the binaries run as ("" = this process's own).
	asUser string
	admin  *sql.DB // the postgres database, for CREATE DATABASE
	nextDB atomic.Int64
}

// Start makes and starts a new cluster. Its settings are PostgreSQL's defaults (fsync
// and synchronous_commit on), so that what tests and benchmarks measure is what a
// production server does.
func Start() (*Server, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		BinDir = d
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s (make deps installs postgresql-15): %w", b, BinDir, err)
		}
	}
	s := &Server{}
	var err error
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := s.giveToPostgres(); err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
	}
	for _, d := range []string{"data", "sock"} {
		// Made by the account that runs the server: initdb wants to create data itself
		// or find it empty and owned by it.
		if out, err := s.run("mkdir", "-m", "0700", filepath.Join(s.dir, d)); err != nil {
			os.RemoveAll(s.dir)
			return nil, fmt.Errorf("mkdir %s: %v: %s", d, err, out)
		}
	}
	if out, err := s.run(filepath.Join(BinDir, "initdb"), "-D", s.data(), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// The port is probed free and then handed to the server; another process taking it
	// in between makes pg_ctl fail, and a second attempt gets another port.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.startServer()
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	if s.admin, err = sql.Open("pgx", s.url("postgres")); err == nil {
		err = s.admin.Ping()
	}
	if err != nil {
		s.Discard()
		return nil, fmt.Errorf("connect to the new server: %w", err)
	}
	return s, nil
}

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Dir is the temporary directory holding the server's data, socket and log.
func (s *Server) Dir() string { return s.dir }

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) startServer() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=200",
		s.port, filepath.Join(s.dir, "sock"))
	out, err := s.run(filepath.Join(BinDir, "pg_ctl"), "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"),
		"-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start on 127.0.0.1:%d: %v: %s; server log: %s", s.port, err, out, tail(log))
	}
	return nil
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", s.nextDB.Add(1))
	// template0 with the C collation (what initdb --no-locale gave the cluster): text
	// sorts by bytes, as it does in SQLite.
	if _, err := s.admin.ExecContext(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.url(name), nil
}

// Stop shuts the server down cleanly (pg_ctl's fast mode: sessions are ended, a shutdown
// checkpoint is written) and removes its files.
func (s *Server) Stop() error { return s.stop("fast") }

// Discard stops the server without its shutdown checkpoint and removes its files: for
// data thrown away anyway. After a long test suite on a busy machine that checkpoint
// (every test's database) can outlast pg_ctl's wait.
func (s *Server) Discard() error { return s.stop("immediate") }

func (s *Server) stop(mode string) error {
	if s.admin != nil {
		s.admin.Close()
	}
	out, err := s.run(filepath.Join(BinDir, "pg_ctl"), "-D", s.data(), "-m", mode, "-w", "stop")
	if err != nil {
		err = fmt.Errorf("pg_ctl stop -m %s: %v: %s", mode, err, out)
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// run runs a command as the server's account and returns its combined output.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	if s.asUser != "" {
		args = append([]string{"-u", s.asUser, "--", name}, args...)
		name = "runuser"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.dir
	// A process group of its own, which the postmaster pg_ctl starts inherits: a Ctrl-C
	// at the terminal goes to the foreground group only, so the server is stopped by Stop,
	// in the order its owner chooses (after the clients that still write), not by the key.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// giveToPostgres makes the postgres account the server's, owning the temporary directory
// (MkdirTemp made it 0700 and root's).
func (s *Server) giveToPostgres() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, and there is no postgres user to run the server as (make deps installs postgresql-15): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return err
	}
	s.asUser = "postgres"
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
