local o = vim.opt

vim.g.mapleader = " "
vim.g.maplocalleader = " "

o.number = true
o.relativenumber = true
o.signcolumn = "yes"
o.cursorline = true
o.scrolloff = 8
o.wrap = false
o.expandtab = true
o.shiftwidth = 2
o.tabstop = 2
o.smartindent = true
o.ignorecase = true
o.smartcase = true
o.splitright = true
o.splitbelow = true
o.termguicolors = true
o.updatetime = 250
o.timeoutlen = 400
o.clipboard = "unnamedplus"
o.undofile = true
o.mouse = "a"

-- Go is written with tabs; gofmt decides, the editor follows.
vim.api.nvim_create_autocmd("FileType", {
  pattern = { "go", "gomod", "make" },
  callback = function()
    vim.opt_local.expandtab = false
    vim.opt_local.tabstop = 4
    vim.opt_local.shiftwidth = 4
  end,
})
