-- Format on save with the tool each language's community uses.
require("conform").setup({
  formatters_by_ft = {
    go = { "goimports", "gofmt" },
    nix = { "alejandra" },
    lua = { "stylua" },
    sh = { "shfmt" },
    bash = { "shfmt" },
    terraform = { "tofu_fmt" },
    hcl = { "tofu_fmt" },
  },
  format_on_save = { timeout_ms = 2000, lsp_format = "fallback" },
})
