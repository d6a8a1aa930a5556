# The one kind of derivation the stand-in nixpkgs makes. It has a real
# drvPath, so anything built from it (an image, a profile) gets one too, but
# its builder only fails: nothing made with the stand-in is ever built.
#
# Every argument a builder was given becomes an input, serialised as JSON:
# the evaluation then forces each of them, copies each file they name into
# the store and fails on a missing one, as the real builder would.
{
  lib,
  system,
}: {
  name,
  # What the builder was called with; functions are left out (JSON cannot
  # hold them), everything else is forced.
  inputs ? {},
  # Attributes nixpkgs gives its packages that modules read (meta, version,
  # passthru such as imageTag).
  extra ? {},
}: let
  withoutFunctions = v:
    if builtins.isFunction v
    then null
    else if lib.isDerivation v
    then v
    else if builtins.isAttrs v
    then lib.mapAttrs (_: withoutFunctions) (removeAttrs v ["override" "overrideAttrs" "overrideDerivation"])
    else if builtins.isList v
    then map withoutFunctions v
    else v;

  drv = derivation {
    inherit name system;
    builder = "/bin/sh";
    args = ["-c" "echo 'stand-in nixpkgs: ${name} cannot be built, only evaluated' >&2; exit 1"];
    # meta and passthru are not inputs of a real derivation either.
    standInInputs = builtins.toJSON (withoutFunctions (removeAttrs inputs ["meta" "passthru"]));
  };

  self =
    drv
    // {
      # Newer than any version a module compares with, so that version
      # gates take the current path; real versions are not known here.
      version = "999-stand-in";
      meta = {};
      passthru = {};
      override = _: self;
      overrideAttrs = _: self;
    }
    // extra;
in
  self
