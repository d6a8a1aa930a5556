# The real nixpkgs lib, as the stand-in and the flake's inputs hand it out.
#
# One change, for the Nix this runs on: lib.filesystem.pathType is
# builtins.readFileType, which Nix 2.14 brought and Debian's nix-bin (2.8)
# lacks; lib.fileset (nix/egoagent/package.nix's source) needs it. With an
# older Nix it is computed from the parent folder's listing, as lib did
# before readFileType existed; a newer Nix uses its own builtin.
{path}: let
  lib = import (path + "/lib");
  pathType =
    builtins.readFileType or (p:
      if !builtins.pathExists p
      then throw "lib.filesystem.pathType: path ${toString p} does not exist"
      else if toString p == "/"
      then "directory"
      else (builtins.readDir (dirOf p)).${baseNameOf p});
in
  lib.extend (_: prev: {
    filesystem = prev.filesystem // {inherit pathType;};
  })
