# egoengine-shell: a workspace running the egoengine image itself, with the
# owner's Home Manager setup, as user joshsymonds, the home on a persistent
# Docker volume. See README.md.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "~> 2.20"
    }
    docker = {
      source  = "kreuzwerker/docker"
      version = "~> 4.6"
    }
  }
}

variable "docker_socket" {
  type        = string
  description = "(Optional) Docker socket URI; empty uses the provisioner's default Docker host."
  default     = ""
}

variable "image_tag" {
  type        = string
  description = "Tag of ghcr.io/veraticus/nix-config/egoengine to run: the nix-config revision the image was built from (7 hex characters). No default: every template version names the image it runs."

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a fixed Docker tag such as the 7-character revision CI published (not \"latest\", which moves under existing workspaces). Push with: coder templates push --variable image_tag=<rev>."
  }
}

variable "op_service_account_token" {
  type        = string
  description = "1Password service-account token for egoagent. Leave unset at push: Coder's server supplies it from TF_VAR_op_service_account_token. It only ever reaches the container's environment."
  sensitive   = true
  default     = ""
}

provider "docker" {
  host = var.docker_socket != "" ? var.docker_socket : null
}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

locals {
  user  = "joshsymonds"
  home  = "/home/${local.user}"
  image = "ghcr.io/veraticus/nix-config/egoengine:${var.image_tag}"
  # The only place the 1Password token goes. An empty token is left out, so
  # egoagent reports "no token" rather than failing on an empty one.
  secret_env = var.op_service_account_token == "" ? [] : ["OP_SERVICE_ACCOUNT_TOKEN=${var.op_service_account_token}"]

  # Coder's labels on the container, to trace it back to its workspace.
  container_labels = {
    "coder.owner"          = data.coder_workspace_owner.me.name
    "coder.owner_id"       = data.coder_workspace_owner.me.id
    "coder.workspace_id"   = data.coder_workspace.me.id
    "coder.workspace_name" = data.coder_workspace.me.name
  }
}

module "agent" {
  source = "./modules/egoengine-agent"
  arch   = data.coder_provisioner.me.arch
  home   = local.home
}

module "ides" {
  source      = "./modules/egoengine-ides"
  agent_id    = module.agent.agent_id
  folder      = local.home
  start_count = data.coder_workspace.me.start_count
}

# The persistent home (see modules/egoengine-home): it outlives every change
# to this template; only deleting the workspace removes it.
module "home" {
  source    = "./modules/egoengine-home"
  workspace = data.coder_workspace.me
  owner     = data.coder_workspace_owner.me
}

# Where the volume stood before it moved into the shared module: without this,
# the first build of this version would destroy every workspace's home.
moved {
  from = docker_volume.home
  to   = module.home.docker_volume.home
}

resource "docker_container" "workspace" {
  count    = data.coder_workspace.me.start_count
  image    = local.image
  name     = "coder-${data.coder_workspace_owner.me.name}-${lower(data.coder_workspace.me.name)}"
  hostname = data.coder_workspace.me.name
  user     = local.user
  # A Coder reached at localhost is the Docker host, not this container.
  entrypoint = ["sh", "-c", replace(module.agent.init_script, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")]
  env        = concat(["CODER_AGENT_TOKEN=${module.agent.token}"], local.secret_env)

  host {
    host = "host.docker.internal"
    ip   = "host-gateway"
  }
  volumes {
    container_path = local.home
    volume_name    = module.home.name
    read_only      = false
  }

  dynamic "labels" {
    for_each = local.container_labels
    content {
      label = labels.key
      value = labels.value
    }
  }
}

resource "coder_metadata" "workspace" {
  count       = data.coder_workspace.me.start_count
  resource_id = docker_container.workspace[0].id
  item {
    key   = "image"
    value = local.image
  }
}
