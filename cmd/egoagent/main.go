// Command egoagent brings a workspace's secrets from 1Password into files,
// keeps them fresh, and reports on them to Coder. This package only parses
// flags and wires the internal packages together; the work happens there.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/veraticus/egoengine/internal/health/printable"
	"github.com/veraticus/egoengine/internal/health/status"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, fixed by the contract: scripts and Coder rely on them.
const (
	exitOK     = 0
	exitFailed = 1 // the work failed: some secret is not fresh
	exitUsage  = 2 // bad usage or bad configuration
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	var notFound string
	app := &cli.App{
		Name:    "egoagent",
		Usage:   "bring 1Password secrets into this workspace and keep them fresh",
		Version: version,
		// urfave/cli would print usage and exit on its own; errors are ours to report.
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		CommandNotFound: func(c *cli.Context, name string) {
			notFound = name
		},
		Flags: globalFlags,
		Commands: []*cli.Command{
			startCommand(),
			runCommand(),
			syncCommand(),
			refreshCommand(),
			statusCommand(),
			metadataCommand(),
			versionCommand(),
			imageCommand(),
		},
	}
	for _, cmd := range app.Commands {
		setUsageError(cmd, app.OnUsageError)
	}
	err := app.Run(args)
	if notFound != "" {
		fmt.Fprintf(os.Stderr, "egoagent: unknown command %q; run egoagent --help for the list\n", notFound)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if msg := err.Error(); msg != "" {
		// Errors quote names, paths and messages from outside.
		fmt.Fprintln(os.Stderr, "egoagent:", printable.Text(msg))
	}
	return exitCode(err)
}

// usageError marks bad usage or bad configuration (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	var foreign *status.ForeignError
	if errors.As(err, &u) || errors.As(err, &foreign) {
		return exitUsage
	}
	var c cli.ExitCoder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return exitFailed
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, "egoagent", version)
			return nil
		},
	}
}

// setUsageError makes a bad flag on any subcommand a usage error (exit 2);
// urfave/cli only applies the app's handler to the app's own flags.
func setUsageError(cmd *cli.Command, f cli.OnUsageErrorFunc) {
	cmd.OnUsageError = f
	for _, sub := range cmd.Subcommands {
		setUsageError(sub, f)
	}
}
