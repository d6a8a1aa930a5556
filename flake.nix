{
  description = "egoengine: egoagent and the egoengine-dev-base-oci Coder workspace image";

  # Pinned by flake.lock; nix/pins.nix records what the pinned nixpkgs
  # provides (its Go), and scripts/test-nix.sh checks the two agree.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = {
    self,
    nixpkgs,
    home-manager,
  }: let
    system = "x86_64-linux";
    inherit (nixpkgs) lib;

    pkgs = import nixpkgs {
      inherit system;
      # The 1Password CLI is the one unfree package the image needs.
      config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) ["1password-cli" "_1password-cli"];
    };

    # Image tags and egoagent's version: the commit, or "dirty" for a
    # working tree with uncommitted changes.
    rev = self.shortRev or self.dirtyShortRev or "dirty";
    fullRev = self.rev or self.dirtyRev or "dirty";

    egoagent = pkgs.callPackage ./nix/egoagent/package.nix {inherit rev;};
    egoagentConfig = pkgs.callPackage ./nix/egoagent/config.nix {};
    home = import ./nix/home-configuration.nix {inherit pkgs home-manager;};
    image = pkgs.callPackage ./nix/image.nix {
      inherit egoagent egoagentConfig home rev fullRev;
    };
  in {
    packages.${system} = {
      inherit egoagent;
      egoengine-dev-base-oci = image;
      default = image;
    };

    checks.${system} = {
      # egoagent's whole Go test suite runs in its build.
      inherit egoagent;
      home-manager = home.activationPackage;
    };

    homeConfigurations."joshsymonds@egoengine" = home;

    devShells.${system}.default = pkgs.mkShell {
      packages = with pkgs; [
        go
        gopls
        gotools
        golangci-lint
        nodejs
        opentofu
        shellcheck
        actionlint
        jq
        skopeo
        gnumake
      ];
    };

    formatter.${system} = pkgs.alejandra;
  };
}
