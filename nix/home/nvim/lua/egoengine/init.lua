-- egoengine's Neovim configuration. Each concern is a module of its own;
-- plugins are installed by Home Manager (nix/home/neovim.nix), not at runtime.
require("egoengine.options")
require("egoengine.keymaps")
require("egoengine.ui")
require("egoengine.treesitter")
require("egoengine.lsp")
require("egoengine.completion")
require("egoengine.format")
require("egoengine.find")
