# Everyday command-line tools for the workspace. Project toolchains beyond Go
# belong in each project's devcontainer or flake, not in the base image.
{pkgs, ...}: {
  # Codex CLI (nixpkgs `codex`, installed by the module): egoagent's codex
  # check runs `codex login status` when it is on PATH. Codex must keep its
  # credentials in ~/.codex/auth.json, the file egoagent installs, renews
  # from 1Password and writes back: in its keyring mode ("keyring", or
  # "auto" where a keyring exists) Codex moves them out and deletes the
  # file, and egoagent would put it back on every change.
  programs.codex = {
    enable = true;
    settings.cli_auth_credentials_store = "file";
  };

  home.packages = with pkgs; [
    go
    gopls
    gotools
    golangci-lint

    curl
    wget
    jq
    yq-go
    ripgrep
    fd
    tree
    htop
    less
    unzip
    gnumake
    gh
    tmux
    shellcheck
    opentofu
  ];

  programs.fzf = {
    enable = true;
    enableZshIntegration = true;
  };

  home.sessionVariables.PAGER = "less -R";
}
