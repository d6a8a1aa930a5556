# egoengine-e2e: the test template of `make e2e` (see docs/e2e.md). It uses the
# shared agent wiring of both egoengine templates (modules/egoengine-agent)
# unchanged, and stands in for what cannot run here:
#
#   docker_volume.home          -> terraform_data.home: a folder that outlives
#                                  stop and start, removed with the workspace
#   docker_container.workspace  -> terraform_data.workspace: `coder agent` as a
#                                  local process with a clean environment,
#                                  killed (with every process it left) on stop
#   the egoengine image         -> a small image root (etc/egoengine, nix/store)
#                                  that `egoagent image link-home` reads
#   1Password                   -> the test's local 1Password service on
#                                  loopback, which the helper egoagent-op
#                                  (built with the tag egoagent_optest)
#                                  reaches instead of the Internet
#
# The 1Password token travels as in the real templates: a sensitive variable
# left unset at push, filled from TF_VAR_op_service_account_token in the Coder
# server's environment, given only to the workspace process's environment.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "~> 2.20"
    }
  }
}

variable "op_service_account_token" {
  type        = string
  description = "1Password service-account token for egoagent, from TF_VAR_op_service_account_token in the server's environment."
  sensitive   = true
  default     = ""
}

variable "workspaces_dir" {
  type        = string
  description = "Absolute folder under which each workspace gets its own folder (home, image root, logs)."
  validation {
    condition     = startswith(var.workspaces_dir, "/")
    error_message = "workspaces_dir must be an absolute path."
  }
}

variable "coder_binary" {
  type        = string
  description = "Absolute path of the coder binary that runs as the workspace agent (the same build as the server)."
}

variable "egoagent_binary" {
  type        = string
  description = "Absolute path of the egoagent binary (bin/egoagent)."
}

variable "egoagent_op_binary" {
  type        = string
  description = "Absolute path of egoagent's 1Password helper, built with -tags egoagent_optest (scripts/e2e.sh)."
}

variable "optest_addr" {
  type        = string
  description = "Loopback host:port of the test's 1Password service, where the test build of egoagent-op sends the SDK's connections."
}

variable "optest_cert" {
  type        = string
  description = "File of the 1Password service's certificate (public), which the test build of egoagent-op trusts."
}

variable "refresh" {
  type        = string
  description = "egoagent's refresh schedule: hourly, the shortest the 1Password source allows (the test runs passes with egoagent refresh and waits for the daemon's retries)."
  default     = "@every 1h"
}

variable "metadata_interval" {
  type        = number
  description = "Seconds between runs of each metadata script."
  default     = 5
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}

locals {
  # Short: egoagent's control socket lands below the home, and a Unix socket
  # path may not exceed 107 bytes. The id's first 8 hex digits are plenty.
  dir = "${var.workspaces_dir}/${substr(data.coder_workspace.me.id, 0, 8)}"
  # The image root stand-in holds the home where the image would mount it, so
  # that `egoagent image link-home --root` sees the layout of the real image.
  root = "${local.dir}/root"
  home = "${local.root}/home/joshsymonds"
}

module "agent" {
  source                     = "./modules/egoengine-agent"
  arch                       = data.coder_provisioner.me.arch
  home                       = local.home
  egoagent_metadata_interval = var.metadata_interval
  egoagent_start_timeout     = 120
}

# Stand-in for the home volume: created once, kept across stop and start.
resource "terraform_data" "home" {
  input = {
    dir = local.dir
  }
  provisioner "local-exec" {
    command = "sh '${path.module}/workspace.sh' create"
    environment = {
      WS_DIR  = local.dir
      WS_HOME = local.home
    }
  }
  provisioner "local-exec" {
    when    = destroy
    command = "sh '${path.module}/workspace.sh' delete"
    environment = {
      WS_DIR = self.input.dir
    }
  }
}

# Stand-in for the workspace container: exists while the workspace runs.
resource "terraform_data" "workspace" {
  count      = data.coder_workspace.me.start_count
  depends_on = [terraform_data.home]
  # Only what the destroy step needs; never the tokens (state is kept by Coder).
  input = {
    dir = local.dir
  }
  provisioner "local-exec" {
    command = "sh '${path.module}/workspace.sh' start"
    environment = {
      WS_DIR            = local.dir
      WS_ROOT           = local.root
      WS_HOME           = local.home
      CODER_BIN         = var.coder_binary
      EGOAGENT_BIN      = var.egoagent_binary
      EGOAGENT_OP_BIN   = var.egoagent_op_binary
      OPTEST_ADDR       = var.optest_addr
      OPTEST_CERT       = var.optest_cert
      EGOAGENT_REFRESH  = var.refresh
      CODER_AGENT_URL   = data.coder_workspace.me.access_url
      CODER_AGENT_TOKEN = module.agent.token
      # As in the real templates: left out when empty.
      OP_SERVICE_ACCOUNT_TOKEN = var.op_service_account_token
    }
  }
  provisioner "local-exec" {
    when    = destroy
    command = "sh '${path.module}/workspace.sh' stop"
    environment = {
      WS_DIR = self.input.dir
    }
  }
}
