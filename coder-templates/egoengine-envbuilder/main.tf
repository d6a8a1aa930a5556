# egoengine-envbuilder: a workspace built by envbuilder from a repository's
# devcontainer (or the egoengine image when it has none), run as joshsymonds
# with the home on a persistent Docker volume. See README.md.

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
    envbuilder = {
      source  = "coder/envbuilder"
      version = "~> 1.0"
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
  description = "Docker network the workspace container joins. It must let the container reach the Coder server at its access URL (host.docker.internal, the Docker host's gateway, when that URL names localhost), and the Git server and cache registry envbuilder uses. \"bridge\" is the engine's default bridge, which an engine started with --bridge=none does not have."
  default     = "bridge"

  validation {
    condition     = var.docker_network != "" && var.docker_network != "none"
    error_message = "docker_network must name a network from which the container can reach Coder: with \"none\" (or an empty name) the agent could never connect."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of ghcr.io/veraticus/nix-config/egoengine, the default fallback image: the nix-config revision the image was built from (7 hex characters). No default: every template version names the image it runs."

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

variable "envbuilder_image" {
  type        = string
  description = "The envbuilder image that builds the devcontainer. Pinned: its version decides the layer hashes the cache is keyed by."
  default     = "ghcr.io/coder/envbuilder:1.3.0"

  validation {
    condition     = !endswith(var.envbuilder_image, ":latest") && can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]*$|@sha256:[0-9a-f]{64}$", var.envbuilder_image))
    error_message = "envbuilder_image must name a fixed version, such as ghcr.io/coder/envbuilder:1.3.0 (not :latest, and not untagged)."
  }
}

variable "cache_repo" {
  type        = string
  description = "(Optional) Registry repository for envbuilder's layer cache, such as ghcr.io/veraticus/egoengine-cache. Empty turns caching off: every start rebuilds."
  default     = ""
}

variable "cache_repo_docker_config" {
  type        = string
  description = "(Optional) Content of a Docker config.json with credentials for cache_repo (and any private base image). Sensitive: give it at push with --variable, or as TF_VAR_cache_repo_docker_config in the Coder server's environment."
  sensitive   = true
  default     = ""

  validation {
    condition     = var.cache_repo_docker_config == "" || can(jsondecode(var.cache_repo_docker_config).auths)
    error_message = "cache_repo_docker_config must be the JSON text of a Docker config.json with an \"auths\" object (the file's content, not its path)."
  }
}

variable "insecure_cache_repo" {
  type        = bool
  description = "Reach cache_repo without TLS verification (a registry on plain HTTP or with a self-signed certificate)."
  default     = false
}

provider "docker" {
  host = var.docker_socket != "" ? var.docker_socket : null
}

provider "envbuilder" {}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "repo" {
  name         = "repo"
  display_name = "Repository"
  description  = "Repository to clone and build the devcontainer of. Choose Custom to give any URL below."
  mutable      = true
  order        = 1
  default      = "https://github.com/veraticus/egoengine"
  option {
    name  = "veraticus/egoengine"
    value = "https://github.com/veraticus/egoengine"
  }
  option {
    name  = "veraticus/nix-config"
    value = "https://github.com/veraticus/nix-config"
  }
  option {
    name        = "Custom"
    description = "The URL in \"Repository URL\" below"
    icon        = "/emojis/1f5c3.png"
    value       = "custom"
  }
}

data "coder_parameter" "custom_repo_url" {
  name         = "custom_repo_url"
  display_name = "Repository URL"
  description  = "Git URL (https:// or ssh) to use when Repository is Custom."
  mutable      = true
  order        = 2
  default      = ""
}

data "coder_parameter" "fallback_image" {
  name         = "fallback_image"
  display_name = "Fallback image"
  description  = "Runs when the repository has no devcontainer, or its build fails."
  mutable      = true
  order        = 3
  default      = local.egoengine_image
}

locals {
  # The user, home, name, labels, Coder URL and token entry every egoengine
  # container shares (see modules/egoengine-container).
  user            = module.container.user
  home            = module.container.home
  egoengine_image = "ghcr.io/veraticus/nix-config/egoengine:${var.image_tag}"
  cache_enabled   = var.cache_repo != ""
  # The cache had this devcontainer: the container runs the built image, not
  # the builder.
  runs_cached_image = local.cache_enabled && try(envbuilder_cached_image.cached[0].exists, false)

  repo_url  = data.coder_parameter.repo.value == "custom" ? trimspace(data.coder_parameter.custom_repo_url.value) : data.coder_parameter.repo.value
  repo_name = try(regex("([^/:]+?)(?:\\.git)?/*$", local.repo_url)[0], "project")
  # Inside the home volume, one folder per repository: switching the
  # repository parameter never builds from another repository's clone.
  workspace_folder     = "${local.home}/src/${local.repo_name}"
  docker_config_base64 = var.cache_repo_docker_config == "" ? "" : base64encode(var.cache_repo_docker_config)

  # What the container needs whether it starts from a fresh build or from a
  # cached image: the agent's settings (a Coder reached at localhost is the
  # Docker host) and how envbuilder hands over to it.
  agent_env = {
    CODER_AGENT_TOKEN       = module.agent.token
    CODER_AGENT_URL         = module.container.coder_url
    ENVBUILDER_INIT_COMMAND = "/bin/sh"
    ENVBUILDER_INIT_SCRIPT = templatefile("${path.module}/init-as-user.sh.tftpl", {
      user        = local.user
      home        = local.home
      init_script = module.container.init_script
    })
  }
  # The full envbuilder configuration when the container runs the builder
  # image (no cache, or nothing cached yet). Empty values are left out.
  builder_env = merge(local.agent_env, {
    ENVBUILDER_GIT_URL              = local.repo_url
    ENVBUILDER_WORKSPACE_FOLDER     = local.workspace_folder
    ENVBUILDER_FALLBACK_IMAGE       = data.coder_parameter.fallback_image.value
    ENVBUILDER_CACHE_REPO           = var.cache_repo
    ENVBUILDER_PUSH_IMAGE           = local.cache_enabled ? "true" : ""
    ENVBUILDER_DOCKER_CONFIG_BASE64 = local.docker_config_base64
    ENVBUILDER_INSECURE             = var.insecure_cache_repo ? "true" : ""
  })
  builder_env_list = [for k in sort(keys(local.builder_env)) : "${k}=${local.builder_env[k]}" if local.builder_env[k] != ""]
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

# Asks the cache repository whether this devcontainer is built already; if so
# the workspace starts straight from that image, with no rebuild.
resource "envbuilder_cached_image" "cached" {
  count                = local.cache_enabled ? data.coder_workspace.me.start_count : 0
  builder_image        = var.envbuilder_image
  git_url              = local.repo_url
  cache_repo           = var.cache_repo
  fallback_image       = data.coder_parameter.fallback_image.value
  workspace_folder     = local.workspace_folder
  docker_config_base64 = local.docker_config_base64 == "" ? null : local.docker_config_base64
  insecure             = var.insecure_cache_repo
  extra_env = merge(local.agent_env, {
    ENVBUILDER_PUSH_IMAGE = "true"
  })
}

resource "docker_image" "builder" {
  name         = var.envbuilder_image
  keep_locally = true
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
  image    = local.cache_enabled ? envbuilder_cached_image.cached[0].image : docker_image.builder.name
  name     = module.container.name
  hostname = data.coder_workspace.me.name
  # Envbuilder builds as root and drops to the devcontainer's user itself.
  # The only place the 1Password token goes is module.container.secret_env.
  env = concat(local.cache_enabled ? envbuilder_cached_image.cached[0].env : local.builder_env_list, module.container.secret_env)

  network_mode = var.docker_network
  host {
    host = module.container.docker_host
    ip   = "host-gateway"
  }

  # As in egoengine-shell: a stop gives the agent its shutdown (egoagent's
  # daemon ends cleanly) instead of the provider's default grace of 0 s, and
  # a stop by the engine itself gets the same.
  destroy_grace_seconds = 60
  stop_signal           = "SIGTERM"
  stop_timeout          = 60
  # After the engine restarts, a workspace Coder still shows as running comes
  # back, but only when it runs the cached image: Docker gives it that image's
  # environment (PATH and the rest). A container that built the devcontainer
  # in place has the builder image's environment; started again, envbuilder
  # finds the image it built and skips to the init script without the
  # devcontainer's environment (seen on a real engine, docs/e2e.md). It stays
  # stopped instead, and the next start of the workspace uses the cache. A
  # container stopped by Coder (the resource destroyed) never comes back.
  restart = local.runs_cached_image ? "unless-stopped" : "no"
  # No healthcheck, unlike egoengine-shell: the container first builds the
  # devcontainer, which may take any time, and neither the builder image
  # nor every devcontainer has curl.

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

  lifecycle {
    precondition {
      condition     = can(regex("^(https?://|ssh://|git@)[^[:space:]]+$", local.repo_url))
      error_message = "No repository to build: choose one under Repository, or choose Custom and put an https:// or git@ URL in Repository URL."
    }
  }
}

resource "coder_metadata" "workspace" {
  count       = data.coder_workspace.me.start_count
  resource_id = docker_container.workspace[0].id
  item {
    key   = "repository"
    value = local.repo_url
  }
  item {
    key   = "image"
    value = docker_container.workspace[0].image
  }
  item {
    key   = "cache repository"
    value = local.cache_enabled ? var.cache_repo : "off"
  }
}
