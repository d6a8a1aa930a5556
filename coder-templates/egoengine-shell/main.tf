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

variable "docker_network" {
  type        = string
  description = "Docker network the workspace container joins. It must let the container reach the Coder server at its access URL (host.docker.internal, the Docker host's gateway, when that URL names localhost). \"bridge\" is the engine's default bridge, which an engine started with --bridge=none does not have."
  default     = "bridge"

  validation {
    condition     = var.docker_network != "" && var.docker_network != "none"
    error_message = "docker_network must name a network from which the container can reach Coder: with \"none\" (or an empty name) the agent could never connect."
  }
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
  description = "1Password service-account token for egoagent, for a server that gives every user one token (TF_VAR_op_service_account_token). Leave unset at push. The recommended path is the owner's Coder user secret with env OP_SERVICE_ACCOUNT_TOKEN, which wins over this. It only ever reaches the container's environment."
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
  # The user, home, name, labels, Coder URL and token entry every egoengine
  # container shares (see modules/egoengine-container).
  user  = module.container.user
  home  = module.container.home
  image = "ghcr.io/veraticus/nix-config/egoengine:${var.image_tag}"
}

module "agent" {
  source = "./modules/egoengine-agent"
  arch   = data.coder_provisioner.me.arch
  home   = local.home
}

module "container" {
  source                   = "./modules/egoengine-container"
  workspace                = data.coder_workspace.me
  owner                    = data.coder_workspace_owner.me
  agent_init_script        = module.agent.init_script
  op_service_account_token = var.op_service_account_token
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
  name     = module.container.name
  hostname = data.coder_workspace.me.name
  user     = local.user
  # A Coder reached at localhost is the Docker host, not this container.
  entrypoint = ["sh", "-c", module.container.init_script]
  # The only place the 1Password token goes.
  env = concat(["CODER_AGENT_TOKEN=${module.agent.token}"], module.container.secret_env)

  network_mode = var.docker_network
  host {
    host = module.container.docker_host
    ip   = "host-gateway"
  }

  # A stop gives the agent its shutdown: it runs the stop scripts (egoagent's
  # daemon ends cleanly and logs it) before the container's processes are
  # killed. Without destroy_grace_seconds the provider stops the container
  # with a grace of 0 s: every process is SIGKILLed at once. stop_timeout is the same grace for a stop by the engine itself.
  destroy_grace_seconds = 60
  stop_signal           = "SIGTERM"
  stop_timeout          = 60
  # After the engine restarts (a host reboot, a Docker upgrade), it starts the
  # container again: the init script fetches the agent, which reconnects
  # with the same token and runs the start scripts again, so the workspace
  # Coder still shows as running comes back. A container stopped by Coder
  # (the resource destroyed) is never brought back.
  restart = "unless-stopped"

  # A container that cannot reach Coder fails the build, with the provider's
  # "container failed to be in healthy state", instead of a build that
  # succeeds and an agent that never connects.
  healthcheck {
    test     = ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "${module.container.coder_url}/healthz"]
    interval = "5s"
    timeout  = "5s"
    retries  = 6
  }
  wait         = true
  wait_timeout = 90
  volumes {
    container_path = local.home
    volume_name    = module.home.name
    read_only      = false
  }

  dynamic "labels" {
    for_each = module.container.labels
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
