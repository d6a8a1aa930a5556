# stdenv as modules see it: the platform, from the real lib, so that isLinux,
# isDarwin and the like are right.
{
  lib,
  system,
}: let
  platform = lib.systems.elaborate system;
in {
  hostPlatform = platform;
  inherit (platform) isLinux isDarwin;
}
