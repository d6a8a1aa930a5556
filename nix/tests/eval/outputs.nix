# This flake's outputs, evaluated offline as `nix flake check` would
# evaluate them: flake.nix's own `outputs` function, called with
#   - nixpkgs: the stand-in (./stand-in) around the real nixpkgs lib,
#   - home-manager: the real Home Manager flake at the revision flake.lock
#     pins, its nixpkgs following ours as flake.nix says,
#   - self: this tree, at a made-up revision.
# The result names each derivation the flake can build, by its output path,
# and Home Manager's warnings; scripts/test-nix.sh fails on any warning.
{
  # The tree whose flake.nix is evaluated (the repository, or a changed copy
  # in the negative tests).
  src,
  # A folder laid out as nixpkgs: lib/, nixos/modules/misc/ and a
  # default.nix that imports ./stand-in (scripts/nix-eval.sh makes it).
  nixpkgs,
  # The unpacked Home Manager tree.
  homeManager,
}: let
  # Each comes as a string (scripts/nix-eval.sh passes folder names) and is
  # used as a path.
  srcDir = /. + src;
  nixpkgsDir = /. + nixpkgs;
  homeManagerDir = /. + homeManager;
  system = "x86_64-linux";
  lib = import ./stand-in/lib.nix {path = nixpkgsDir;};

  nixpkgsInput = {
    outPath = nixpkgsDir;
    inherit lib;
  };
  homeManagerFlake =
    (import (homeManagerDir + "/flake.nix")).outputs {
      self = homeManagerFlake;
      nixpkgs = nixpkgsInput;
    }
    // {outPath = homeManagerDir;};

  # A clean tree at a revision: self.shortRev is what the image is tagged
  # with.
  rev = "0123456789abcdef0123456789abcdef01234567";
  self =
    outputs
    // {
      outPath = srcDir;
      inherit rev;
      shortRev = builtins.substring 0 7 rev;
    };
  outputs = (import (srcDir + "/flake.nix")).outputs {
    inherit self;
    nixpkgs = nixpkgsInput;
    home-manager = homeManagerFlake;
  };

  home = outputs.homeConfigurations."joshsymonds@egoengine";
  hm = home.config.home;
in {
  inherit rev;
  drvPaths =
    {
      "packages.${system}.egoagent" = outputs.packages.${system}.egoagent.drvPath;
      "packages.${system}.egoengine-dev-base-oci" = outputs.packages.${system}.egoengine-dev-base-oci.drvPath;
      "packages.${system}.default" = outputs.packages.${system}.default.drvPath;
      "devShells.${system}.default" = outputs.devShells.${system}.default.drvPath;
      "formatter.${system}" = outputs.formatter.${system}.drvPath;
      "homeConfigurations.\"joshsymonds@egoengine\".activationPackage" = home.activationPackage.drvPath;
    }
    // lib.mapAttrs' (name: drv: lib.nameValuePair "checks.${system}.${name}" drv.drvPath) outputs.checks.${system}
    // lib.listToAttrs (map (p: lib.nameValuePair "home.packages: ${p.name}" p.drvPath) hm.packages)
    // lib.mapAttrs' (name: file: lib.nameValuePair "home.file: ${name}" "${file.source}") (lib.filterAttrs (_: f: f.enable) hm.file);

  # What the image carries, for the checks on the image's name and tag.
  image = {
    inherit (outputs.packages.${system}.egoengine-dev-base-oci) imageName imageTag;
  };

  # Codex's settings as Home Manager renders them to ~/.codex/config.toml.
  codexSettings = home.config.programs.codex.settings;

  # Home Manager prints these as traces; returned too, so that the test can
  # fail on them without reading stderr.
  inherit (home.config) warnings;
}
