-- Language servers, installed by Home Manager (programs.neovim.extraPackages).
-- nvim-lspconfig supplies each server's defaults; Neovim's own vim.lsp API
-- (0.11 and later) enables them.
local servers = {
  gopls = {
    settings = {
      gopls = {
        gofumpt = false,
        staticcheck = true,
        analyses = { unusedparams = true, shadow = true },
      },
    },
  },
  nil_ls = {
    settings = { ["nil"] = { formatting = { command = { "alejandra" } } } },
  },
  lua_ls = {
    settings = { Lua = { diagnostics = { globals = { "vim" } }, telemetry = { enable = false } } },
  },
  bashls = {},
  terraformls = {},
}

local capabilities = require("cmp_nvim_lsp").default_capabilities()
vim.lsp.config("*", { capabilities = capabilities })
for name, config in pairs(servers) do
  vim.lsp.config(name, config)
  vim.lsp.enable(name)
end

vim.api.nvim_create_autocmd("LspAttach", {
  callback = function(args)
    local opts = function(desc) return { buffer = args.buf, desc = desc } end
    local tb = require("telescope.builtin")
    vim.keymap.set("n", "gd", tb.lsp_definitions, opts("Go to definition"))
    vim.keymap.set("n", "gr", tb.lsp_references, opts("References"))
    vim.keymap.set("n", "gi", tb.lsp_implementations, opts("Implementations"))
    vim.keymap.set("n", "K", vim.lsp.buf.hover, opts("Hover"))
    vim.keymap.set("n", "<leader>rn", vim.lsp.buf.rename, opts("Rename"))
    vim.keymap.set({ "n", "v" }, "<leader>ca", vim.lsp.buf.code_action, opts("Code action"))
    vim.keymap.set("n", "<leader>ds", tb.lsp_document_symbols, opts("Document symbols"))
  end,
})

vim.diagnostic.config({ virtual_text = true, severity_sort = true, float = { border = "rounded" } })
