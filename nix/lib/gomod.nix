# Reads go.mod's `go` directive using builtins only, so the same code runs in
# the flake and offline under `nix-instantiate --eval` (scripts/test-nix.sh).
{
  # goVersion "module x\n\ngo 1.24.0\n" == "1.24.0"
  goVersion = text: let
    lines = builtins.filter builtins.isString (builtins.split "\n" text);
    found =
      builtins.filter (m: m != null)
      (map (builtins.match "go[[:space:]]+([0-9]+(\\.[0-9]+)*)[[:space:]]*(//.*)?") lines);
  in
    if found == []
    then throw "go.mod has no `go` line"
    else builtins.head (builtins.head found);
}
