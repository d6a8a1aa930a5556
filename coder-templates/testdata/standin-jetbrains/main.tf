# STAND-IN for registry.coder.com/coder/jetbrains/coder (tests only).

terraform {
  required_providers {
    coder = {
      source = "coder/coder"
    }
  }
}

variable "agent_id" {
  type = string
}

variable "folder" {
  type = string
  validation {
    condition     = can(regex("^(?:/[^/]+)+/?$", var.folder))
    error_message = "The folder must be a full path and must not start with a ~."
  }
}

resource "coder_app" "jetbrains" {
  agent_id     = var.agent_id
  slug         = "jetbrains-standin"
  display_name = "JetBrains (stand-in)"
  external     = true
  url          = "jetbrains://gateway/coder?folder=${var.folder}"
}
