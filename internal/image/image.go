// Package image knows what the egoengine-dev-base-oci image promises and
// keeps those promises true inside a running workspace.
//
// Verify checks, from inside a container, each thing the image is built to
// provide (the user, the home, the shell, /tmp, the tools, the egoagent
// configuration) and reports what is missing. LinkHome brings a persistent
// home volume back in line with the Home Manager files of the image that is
// running now: a Docker volume is seeded from the image only once, so after
// an upgrade its links point into store paths the new image no longer has.
//
// Both work on a filesystem root given by the caller ("/" in a container), so
// tests run them on trees they build themselves. Absolute symlinks inside
// that root are followed as the container would see them, not as the host
// would.
package image

// What the image promises. These names are fixed by the contract shared with
// the Coder templates (see the repository's CONTRACT and docs/image.md).
const (
	User = "joshsymonds"
	UID  = 1000
	GID  = 1000
	Home = "/home/joshsymonds"

	// HomeFilesLink is where the image records its Home Manager home-files
	// (a symlink to the store path), for LinkHome to read at run time.
	HomeFilesLink = "/etc/egoengine/home-files"
	// HomePathLink is where the image records its Home Manager profile
	// (home-path); the home's .nix-profile points at what it names.
	HomePathLink = "/etc/egoengine/home-path"
	// ConfigPath is egoagent's configuration as built into the image.
	ConfigPath = "/etc/egoagent/config.toml"
	// StandInList exists only in a stand-in image built for tests
	// (scripts/standin-image.sh): the promises it cannot keep, and why.
	StandInList = "/etc/egoengine/stand-in"
	// StoreDir is the Nix store inside the image.
	StoreDir = "/nix/store"
	// ProfileLink is the home's link to the Home Manager profile; its bin
	// folder must be on PATH.
	ProfileLink = ".nix-profile"
)

// Tools are the commands the image puts on PATH for the workspace user.
var Tools = []string{"zsh", "git", "nvim", "op", "egoagent", "egoagent-op", "direnv", "starship", "codex", "curl"}
