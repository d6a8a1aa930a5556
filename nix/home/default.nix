# Home Manager for joshsymonds in the egoengine workspace image. One concern
# per file; this one only says who and where.
{...}: {
  imports = [
    ./zsh.nix
    ./starship.nix
    ./neovim.nix
    ./git.nix
    ./direnv.nix
    ./dev-tools.nix
    ./onepassword.nix
  ];

  home = {
    username = "joshsymonds";
    homeDirectory = "/home/joshsymonds";
    # The release whose defaults this configuration was written against; it
    # does not follow nixpkgs. Change it only after reading Home Manager's
    # release notes for the state changes in between.
    stateVersion = "25.11";
  };

  programs.home-manager.enable = true;
}
