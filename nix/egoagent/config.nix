# Renders settings.nix as TOML for /etc/egoagent/config.toml.
{formats}: (formats.toml {}).generate "egoagent-config.toml" (import ./settings.nix)
