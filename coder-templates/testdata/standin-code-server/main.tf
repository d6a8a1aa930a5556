# STAND-IN for registry.coder.com/coder/code-server/coder (tests only).

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
  type    = string
  default = ""
}

variable "order" {
  type    = number
  default = null
}

resource "coder_app" "code-server" {
  agent_id     = var.agent_id
  slug         = "code-server"
  display_name = "code-server (stand-in)"
  url          = "http://localhost:13337/${var.folder != "" ? "?folder=${urlencode(var.folder)}" : ""}"
  order        = var.order
}
