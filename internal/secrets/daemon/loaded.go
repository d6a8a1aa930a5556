package daemon

import (
	"github.com/veraticus/egoengine/internal/health/statedir"
	"github.com/veraticus/egoengine/internal/secrets/config"
)

// Loaded is the configuration the daemon runs on and the file it came
// from. Passes are given Config itself, parsed once when the file last
// loaded cleanly, so a file broken by an edit never reaches a pass.
type Loaded struct {
	Path   string
	Config *config.Config
}

// Load reads and validates the configuration file at path.
func Load(path, home string) (*Loaded, error) {
	cfg, err := config.Load(path, config.Env{Home: home, StateDir: statedir.Path(home)})
	if err != nil {
		return nil, err
	}
	return &Loaded{Path: path, Config: cfg}, nil
}
