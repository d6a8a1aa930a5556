# Everyday command-line tools for the workspace. Project toolchains beyond Go
# belong in each project's devcontainer or flake, not in the base image.
{pkgs, ...}: {
  home.packages = with pkgs; [
    # Codex CLI: egoagent's codex check runs `codex login status` when it is
    # on PATH (nixpkgs attribute `codex`).
    codex

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
