local telescope = require("telescope")
telescope.setup({
  defaults = { file_ignore_patterns = { "%.git/", "node_modules/", "vendor/" } },
  pickers = { find_files = { hidden = true } },
})
pcall(telescope.load_extension, "fzf")

local tb = require("telescope.builtin")
local map = vim.keymap.set
map("n", "<leader>ff", tb.find_files, { desc = "Find files" })
map("n", "<leader>fg", tb.live_grep, { desc = "Grep" })
map("n", "<leader>fb", tb.buffers, { desc = "Buffers" })
map("n", "<leader>fh", tb.help_tags, { desc = "Help" })
map("n", "<leader>fr", tb.oldfiles, { desc = "Recent files" })
map("n", "<leader>/", tb.current_buffer_fuzzy_find, { desc = "Search in buffer" })
