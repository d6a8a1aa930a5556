# egoagent's configuration as the image carries it (/etc/egoagent/config.toml):
# the contract's first secret, the Codex credentials. Plain data, no nixpkgs,
# so that scripts/test-nix.sh can compare it offline with
# internal/image/testdata/image-config.toml, which egoagent's own loader is
# tested against. The 1Password token is never here: egoagent reads it from
# OP_SERVICE_ACCOUNT_TOKEN only.
{
  source.kind = "1password";

  schedule = {
    refresh = "@every 6h";
    jitter = "10m";
  };

  secret = [
    {
      name = "codex";
      ref = "op://egoengine/Codex Auth/auth.json";
      path = "~/.codex/auth.json";
      check = "codex";
      policy = "consumer-rewrites";
    }
  ];
}
