# Neovim with a complete configuration: Tree-sitter highlighting, language
# servers for what this workspace edits (Go, Nix, Lua, shell, OpenTofu),
# completion, fuzzy finding, git signs and format on save. Plugins come from
# nixpkgs, so nothing is downloaded when the editor starts in a workspace.
{pkgs, ...}: {
  programs.neovim = {
    enable = true;
    defaultEditor = true;
    viAlias = true;
    vimAlias = true;

    plugins = with pkgs.vimPlugins; [
      (nvim-treesitter.withPlugins (p: [
        p.bash
        p.go
        p.gomod
        p.hcl
        p.json
        p.lua
        p.markdown
        p.markdown_inline
        p.nix
        p.terraform
        p.toml
        p.vimdoc
        p.yaml
      ]))
      nvim-lspconfig
      nvim-cmp
      cmp-nvim-lsp
      cmp-buffer
      cmp-path
      telescope-nvim
      telescope-fzf-native-nvim
      plenary-nvim
      gitsigns-nvim
      lualine-nvim
      nvim-web-devicons
      which-key-nvim
      conform-nvim
      oil-nvim
      tokyonight-nvim
    ];

    # Language servers and formatters the configuration calls, on the
    # editor's PATH only.
    extraPackages = with pkgs; [
      gopls
      gotools
      nil
      alejandra
      lua-language-server
      stylua
      bash-language-server
      shellcheck
      shfmt
      terraform-ls
      opentofu
      ripgrep
      fd
    ];

    # The configuration is Lua only: no Python or Ruby plugin hosts (Home
    # Manager's defaults for stateVersion 26.05 on, said here so that the
    # older stateVersion does not bring them in).
    withPython3 = false;
    withRuby = false;

    initLua = ''
      require("egoengine")
    '';
  };

  # The configuration itself, as plain Lua files in ~/.config/nvim/lua.
  xdg.configFile."nvim/lua/egoengine".source = ./nvim/lua/egoengine;
}
