package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/config"
	"github.com/veraticus/egoengine/internal/secrets/daemon"
	"github.com/veraticus/egoengine/internal/secrets/engine"
)

// Global flags. Every setting egoagent takes from flags or the environment
// is declared here and nowhere else. The 1Password token is deliberately not
// among them: it is read from OP_SERVICE_ACCOUNT_TOKEN by the source alone.
var globalFlags = []cli.Flag{
	&cli.StringFlag{
		Name:    "config",
		Usage:   "configuration file (default: ~/.config/egoagent/config.toml if present, else /etc/egoagent/config.toml)",
		EnvVars: []string{"EGOAGENT_CONFIG"},
	},
	&cli.StringFlag{
		Name:  "log-format",
		Usage: "auto (readable on a terminal, JSON otherwise), console or json",
		Value: "auto",
	},
	&cli.BoolFlag{Name: "verbose", Usage: "log debug detail"},
	&cli.StringFlag{
		Name:    "op-helper",
		Usage:   "the 1Password helper (default: egoagent-op beside this binary, else on PATH)",
		EnvVars: []string{"EGOAGENT_OP_HELPER"},
		Hidden:  true,
	},
}

// env is what every command needs from the process: where home and state
// are, and a logger.
type env struct {
	home     string
	stateDir string
	log      *zap.Logger
	c        *cli.Context
}

func newEnv(c *cli.Context) (*env, error) {
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return nil, usageError{errors.New("HOME is not set to an absolute path; egoagent keeps its state and secrets under it")}
	}
	log, err := newLogger(c.String("log-format"), c.Bool("verbose"))
	if err != nil {
		return nil, usageError{err}
	}
	return &env{home: home, stateDir: statedir.Path(home), log: log, c: c}, nil
}

// configPath is absolute, so that the daemon and its clients can tell
// whether they mean the same file.
func (e *env) configPath() string {
	p := e.c.String("config")
	if p == "" {
		p = config.Path(e.home)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

func (e *env) configEnv() config.Env { return config.Env{Home: e.home, StateDir: e.stateDir} }

// request is a control-socket request that says who asks.
func (e *env) request(op string) daemon.Request {
	return daemon.Request{Op: op, Home: e.home, Config: e.configPath()}
}

func (e *env) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(e.configPath(), e.configEnv())
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// setup is what an engine needs from this process besides its
// configuration.
func (e *env) setup() engine.Setup {
	host, _ := os.Hostname() // names this workspace in a renewal lease
	return engine.Setup{Home: e.home, StateDir: e.stateDir, Log: e.log, Helper: e.c.String("op-helper"), Holder: host}
}

// newLogger logs for people on a terminal and for machines elsewhere. Log
// lines carry names, paths, references and error classes, never values;
// in both formats they are made printable, since names and errors come
// from outside.
func newLogger(format string, verbose bool) (*zap.Logger, error) {
	switch format {
	case "auto":
		format = "json"
		if isTerminal(os.Stderr) {
			format = "console"
		}
	case "console", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: use auto, console or json", format)
	}
	level := zapcore.InfoLevel
	if verbose {
		level = zapcore.DebugLevel
	}
	var enc zapcore.Encoder
	if format == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
		ec.EncodeCaller = nil
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(printable.Core(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), level))), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
