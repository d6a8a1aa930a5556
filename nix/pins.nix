# What the pinned nixpkgs provides, written down so that scripts/test-nix.sh
# can check go.mod against it without fetching nixpkgs.
#
# nixpkgsRev must equal the nixpkgs rev in flake.lock: test-nix fails when the
# lock moves and this file was not looked at again. goVersion is the Go of
# that nixpkgs (`pkgs.go`): nixos-unstable since the 26.05 branch-off (May
# 2026) has `go = go_1_26;` in pkgs/top-level/all-packages.nix, as does
# nixos-26.05 itself. The flake also asserts, when it is evaluated, that
# pkgs.go is at least this, so a wrong number here fails the real build.
{
  nixpkgsRev = "65179426c83bb3f6bc14898b42ea1c6f01d374b0"; # nixos-unstable, 2026-07-02
  goVersion = "1.26";
}
