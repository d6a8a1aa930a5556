# egoagent's configuration as the image carries it (/etc/egoagent/config.toml):
# the contract's first secret, the Codex credentials, and the mirror that
# replaces the owner's `ee sync`. Plain data, no nixpkgs, so that
# scripts/test-nix.sh can render it offline and load it with egoagent's own
# loader. The 1Password token is never here: egoagent reads it from
# OP_SERVICE_ACCOUNT_TOKEN only.
{
  source.kind = "1password";

  # With the 1Password source every schedule must be at least an hour apart
  # (docs/configuration.md, How often); six hours leaves room for several
  # workspaces on one account.
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
      # Codex's renewals reach every workspace (write_back), and egoagent
      # renews the shared login itself, once, before any Codex would
      # (renew): docs/egoagent.md, One renewer. Both need the service
      # account to have write access to the vault; without it they fail
      # in status and Codex renews by itself, as before.
      write_back = true;
      renew = true;
    }
  ];

  # What `ee sync` did: every Document of the vault "egoengine" titled
  # home/<path> lands at ~/<path>, mode 0600. egoagent refuses Documents that
  # would land in its own state folder, over a configured secret (such as
  # home/.codex/auth.json over the Codex secret) or on another Document.
  mirror = [
    {
      vault = "egoengine";
      prefix = "home/";
    }
  ];
}
