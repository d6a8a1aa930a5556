# direnv with nix-direnv, so project .envrc files with `use flake` are cached.
{...}: {
  programs.direnv = {
    enable = true;
    enableZshIntegration = true;
    nix-direnv.enable = true;
    config.global.hide_env_diff = true;
  };
}
