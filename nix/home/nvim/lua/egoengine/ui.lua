require("tokyonight").setup({ style = "night" })
vim.cmd.colorscheme("tokyonight")

require("lualine").setup({
  options = { theme = "tokyonight", globalstatus = true },
})

require("gitsigns").setup({
  on_attach = function(buf)
    local gs = require("gitsigns")
    local opts = function(desc) return { buffer = buf, desc = desc } end
    vim.keymap.set("n", "]h", function() gs.nav_hunk("next") end, opts("Next hunk"))
    vim.keymap.set("n", "[h", function() gs.nav_hunk("prev") end, opts("Previous hunk"))
    vim.keymap.set("n", "<leader>hs", gs.stage_hunk, opts("Stage hunk"))
    vim.keymap.set("n", "<leader>hr", gs.reset_hunk, opts("Reset hunk"))
    vim.keymap.set("n", "<leader>hb", gs.blame_line, opts("Blame line"))
  end,
})

require("which-key").setup({})
require("oil").setup({ view_options = { show_hidden = true } })
