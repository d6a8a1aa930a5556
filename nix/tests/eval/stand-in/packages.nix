# The packages the stand-in nixpkgs has: exactly those that this flake and
# the Home Manager modules it enables ask for, by their nixpkgs attribute
# names. A name missing here fails the evaluation where it is used
# ("attribute 'x' missing" or "undefined variable 'x'", with file and line):
# when a module starts using a package, add its name here after checking on
# search.nixos.org that nixpkgs has it under that name.
{
  lib,
  standIn,
  unfree,
}: let
  # A package: a derivation that cannot build, with the meta.mainProgram
  # that lib.getExe reads (the package's own name unless given).
  package = name: mainProgram:
    standIn {
      inherit name;
      extra = {
        pname = name;
        meta = {inherit mainProgram;};
        override = args:
          standIn {
            inherit name;
            inputs = args;
            extra = {
              pname = name;
              meta = {inherit mainProgram;};
            };
          };
      };
    };
  plain = names: lib.genAttrs names (name: package name name);

  # Packages whose main program is not named after the package.
  programs = {
    bashInteractive = "bash";
    gnugrep = "grep";
    gnused = "sed";
    gnutar = "tar";
    gnumake = "make";
    procps = "ps";
    findutils = "find";
    coreutils = "ls";
    neovim-unwrapped = "nvim";
    ripgrep = "rg";
    yq-go = "yq";
    gawk = "awk";
    glibcLocales = "locale";
  };

  # Tree-sitter grammars nix/home/neovim.nix asks nvim-treesitter for.
  grammars = plain ["bash" "go" "gomod" "hcl" "json" "lua" "markdown" "markdown_inline" "nix" "terraform" "toml" "vimdoc" "yaml"];

  vimPlugins =
    plain [
      "nvim-lspconfig"
      "nvim-cmp"
      "cmp-nvim-lsp"
      "cmp-buffer"
      "cmp-path"
      "telescope-nvim"
      "telescope-fzf-native-nvim"
      "plenary-nvim"
      "gitsigns-nvim"
      "lualine-nvim"
      "nvim-web-devicons"
      "which-key-nvim"
      "conform-nvim"
      "oil-nvim"
      "tokyonight-nvim"
    ]
    // {
      nvim-treesitter =
        package "nvim-treesitter" "nvim-treesitter"
        // {
          withPlugins = choose:
            standIn {
              name = "nvim-treesitter-with-grammars";
              inputs.grammars = choose grammars;
            };
        };
    };
in
  lib.mapAttrs package programs
  // plain [
    # the image's system tools (nix/image.nix)
    "curl"
    "gzip"
    "less"
    "which"
    "zsh"
    # the dev shell and the formatter (flake.nix); go is below
    "gopls"
    "gotools"
    "golangci-lint"
    "nodejs"
    "opentofu"
    "shellcheck"
    "actionlint"
    "jq"
    "skopeo"
    "alejandra"
    # nix/home/dev-tools.nix
    "codex"
    "wget"
    "fd"
    "tree"
    "htop"
    "unzip"
    "gh"
    "tmux"
    # Neovim's language servers and formatters (nix/home/neovim.nix)
    "nil"
    "lua-language-server"
    "stylua"
    "bash-language-server"
    "shfmt"
    "terraform-ls"
    # the enabled Home Manager programs
    "starship"
    "direnv"
    "nix-direnv"
    "fzf"
    "git"
    "zsh-autosuggestions"
    "zsh-syntax-highlighting"
    "nix-zsh-completions"
    # Home Manager itself: activation and the home-manager command
    "bash"
    "diffutils"
    "lndir"
    "ncurses"
    "gettext"
    "inetutils"
    "nixos-option"
    # modules Home Manager enables by default on Linux: man pages, its
    # manual, XDG MIME data, systemd user units
    "man"
    "installShellFiles"
    "nixos-render-docs"
    "shared-mime-info"
    "desktop-file-utils"
    "systemd"
    "sd-switch"
    "emptyDirectory"
  ]
  // {
    inherit vimPlugins;
    # The one version the flake reads: buildGoModule's Go, which
    # nix/egoagent/package.nix compares with go.mod. nix/pins.nix records the
    # pinned nixpkgs' Go, and test-nix checks pins.nix against flake.lock.
    go = package "go" "go" // {version = (import ../../../pins.nix).goVersion;};
    # The one unfree package: only the flake's allowUnfreePredicate lets it
    # through, as in nixpkgs.
    _1password-cli = unfree "_1password-cli" (package "1password-cli" "op");
  }
