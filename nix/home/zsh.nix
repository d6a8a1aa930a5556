# zsh, the login shell (/etc/passwd in the image names /bin/zsh; this module
# writes its configuration).
{config, ...}: {
  programs.zsh = {
    enable = true;
    enableCompletion = true;
    autosuggestion.enable = true;
    syntaxHighlighting.enable = true;

    history = {
      size = 100000;
      save = 100000;
      # Keep history on the persistent home volume, not in the image.
      path = "${config.xdg.stateHome}/zsh/history";
      ignoreDups = true;
      share = true;
    };

    shellAliases = {
      ll = "ls -lah";
      g = "git";
      vim = "nvim";
    };

    initContent = ''
      bindkey -e
      # A workspace started from an upgraded image keeps its old home volume:
      # say so when its links point into an image that is gone.
      if [[ ! -e ~/.nix-profile/bin ]]; then
        print -u2 "egoengine: the Home Manager profile is missing; run: egoagent image link-home"
      fi
    '';
  };
}
