# git, with hooks that run in every repository of the workspace.
#
# Home Manager's hooks set core.hooksPath, which would silence each
# repository's own .git/hooks; every hook here therefore runs the
# repository's hook of the same name afterwards (git-hooks/run-local).
{lib, ...}: let
  runLocal = ./git-hooks/run-local;
  # Hooks that only hand over to the repository's own.
  passThrough = ["commit-msg" "prepare-commit-msg" "pre-push" "post-checkout" "post-merge" "pre-rebase"];
in {
  programs.git = {
    enable = true;
    hooks =
      lib.genAttrs passThrough (_: runLocal)
      // {
        pre-commit = ./git-hooks/pre-commit;
      };

    ignores = [".direnv/" "result" "result-*" ".envrc.local"];

    settings = {
      user = {
        name = "Josh Symonds";
        email = "josh@joshsymonds.com";
      };
      alias = {
        co = "checkout";
        st = "status";
        a = "add --all";
        pl = "pull";
        pu = "push";
        lg = "log --graph --oneline --decorate";
      };
      core = {
        editor = "nvim";
        whitespace = "fix,-indent-with-non-tab,trailing-space,cr-at-eol";
      };
      init.defaultBranch = "main";
      pull.rebase = true;
      push = {
        default = "simple";
        autoSetupRemote = true;
      };
      rerere = {
        enabled = true;
        autoupdate = true;
      };
      diff.algorithm = "histogram";
    };
  };
}
