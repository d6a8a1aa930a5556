# The Home Manager configuration "joshsymonds@egoengine": the modules under
# nix/home on the flake's nixpkgs. The image uses its home-files and its
# profile (home-path) directly, because activation cannot run while the
# image is built.
{
  pkgs,
  home-manager,
}:
home-manager.lib.homeManagerConfiguration {
  inherit pkgs;
  modules = [./home];
}
