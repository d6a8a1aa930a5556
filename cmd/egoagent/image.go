package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/veraticus/egoengine/internal/image"
)

// errImageFailed is returned after a report was printed, so that the exit
// code is 1 without printing the failure twice.
var errImageFailed = cli.Exit("", exitFailed)

// imageUsageError makes a bad flag of a subcommand exit 2, like the app's own.
func imageUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }

func imageCommand() *cli.Command {
	rootFlag := &cli.StringFlag{
		Name:  "root",
		Value: "/",
		Usage: "check the image mounted at this folder instead of the running one",
	}
	return &cli.Command{
		Name:  "image",
		Usage: "check or repair what the egoengine image promises",
		Subcommands: []*cli.Command{
			{
				Name:         "verify",
				Usage:        "check, inside a running container, each promise of the image (user, home, shell, tools, config)",
				ArgsUsage:    " ",
				Flags:        []cli.Flag{rootFlag},
				OnUsageError: imageUsageError,
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{fmt.Errorf("image verify takes no arguments, got %q", c.Args().First())}
					}
					o := image.DefaultOptions()
					o.Root = c.String("root")
					rep, err := image.Verify(o)
					if err != nil {
						return usageError{err}
					}
					if err := rep.Write(c.App.Writer); err != nil {
						return err
					}
					if !rep.OK() {
						return errImageFailed
					}
					return nil
				},
			},
			{
				Name:         "link-home",
				Usage:        "re-link the image's Home Manager files into the (persistent) home and remove links into an old image",
				ArgsUsage:    " ",
				OnUsageError: imageUsageError,
				Flags: []cli.Flag{
					rootFlag,
					&cli.StringFlag{Name: "home", Value: image.Home, Usage: "the home to bring in line"},
					&cli.StringFlag{Name: "home-files", Value: image.HomeFilesLink, Usage: "Home Manager's home-files of this image"},
					&cli.StringFlag{Name: "home-path", Value: image.HomePathLink, Usage: "Home Manager's profile, linked at ~/.nix-profile (empty: leave that link alone)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{fmt.Errorf("image link-home takes no arguments, got %q", c.Args().First())}
					}
					o := image.DefaultLinkOptions()
					o.Root = c.String("root")
					o.Home = c.String("home")
					o.HomeFiles = c.String("home-files")
					o.HomePath = c.String("home-path")
					res, err := image.LinkHome(o)
					if werr := res.Write(c.App.Writer); werr != nil && err == nil {
						err = werr
					}
					if err != nil {
						return err
					}
					if !res.OK() {
						return errImageFailed
					}
					return nil
				},
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{errors.New("image needs a subcommand: verify or link-home")}
			}
			return usageError{fmt.Errorf("image: unknown subcommand %q; use verify or link-home", c.Args().First())}
		},
	}
}
