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
  # Where the container reaches Coder: the access URL, with a localhost
  # (the Docker host, seen from the host) rewritten as in the init script.
  coder_url = replace(data.coder_workspace.me.access_url, "/localhost|127\\.0\\.0\\.1/", "host.docker.internal")
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

  network_mode = var.docker_network
  host {
    host = "host.docker.internal"
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
    test     = ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "${local.coder_url}/healthz"]
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
