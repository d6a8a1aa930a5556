# A stand-in for nixpkgs, for evaluating this flake offline (make test-nix).
#
# The real nixpkgs (4.4 GB) cannot be fetched where the tests run. This file
# is imported as `import nixpkgs { system; config; }` is in flake.nix, and
# gives the real nixpkgs `lib` plus:
#   - every package the flake and the Home Manager modules it enables use,
#     each a derivation that cannot build (packages.nix lists them by name);
#   - the builders they call (builders.nix), each a derivation whose inputs
#     are all of its arguments, so that a wrong argument, a missing file or
#     a broken reference between files still fails the evaluation.
# It knows nothing of real package names, versions or what a builder does:
# docs/image.md lists what only the real nixpkgs checks.
{
  # Where the unpacked nixpkgs `lib` tree is: Home Manager imports
  # nixos/modules/misc/{assertions,meta}.nix from pkgs.path.
  path,
  system ? "x86_64-linux",
  config ? {},
  ...
}: let
  lib = import ./lib.nix {inherit path;};
  stdenv = import ./stdenv.nix {inherit lib system;};
  standIn = import ./derivation.nix {inherit lib system;};

  pkgs =
    import ./packages.nix {inherit lib standIn unfree;}
    // import ./builders.nix {inherit lib standIn;}
    // {
      inherit lib path stdenv system config pkgs;
      overlays = [];
      buildPackages = pkgs;
      # The real callPackage, from lib: a missing or unexpected argument
      # fails as it does with nixpkgs.
      callPackage = lib.callPackageWith pkgs;
    };

  # Real nixpkgs refuses an unfree package unless config allows it: the
  # flake's allowUnfreePredicate is asked about the package packages.nix
  # marks unfree.
  unfree = name: drv:
    if config ? allowUnfreePredicate && config.allowUnfreePredicate drv
    then drv
    else throw "stand-in nixpkgs: ${name} is unfree and config.allowUnfreePredicate does not allow it (flake.nix)";
in
  pkgs
