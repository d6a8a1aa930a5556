# The 1Password CLI (`op`). It is unfree: the flake allows this package alone
# (allowUnfreePredicate in flake.nix). No token is configured here: egoagent
# and `op` both read OP_SERVICE_ACCOUNT_TOKEN from the workspace environment.
{pkgs, ...}: {
  home.packages = [pkgs._1password-cli];
}
