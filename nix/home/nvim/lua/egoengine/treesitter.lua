-- Parsers come from nixpkgs (nvim-treesitter.withPlugins). Start Neovim's
-- own Tree-sitter highlighting for any buffer whose language has one, which
-- works whichever nvim-treesitter branch nixpkgs ships.
vim.api.nvim_create_autocmd("FileType", {
  callback = function(args)
    local lang = vim.treesitter.language.get_lang(vim.bo[args.buf].filetype)
    if lang and pcall(vim.treesitter.start, args.buf, lang) then
      vim.wo.foldmethod = "expr"
      vim.wo.foldexpr = "v:lua.vim.treesitter.foldexpr()"
      vim.wo.foldlevel = 99
    end
  end,
})
