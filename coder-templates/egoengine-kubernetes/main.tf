# egoengine-kubernetes: egoengine-envbuilder on Kubernetes. Envbuilder builds
# a repository's devcontainer (or runs the egoengine image when it has none)
# in a Pod, the agent runs as joshsymonds, the home is a PersistentVolumeClaim,
# and a NetworkPolicy closes the Pod to every inbound connection. See README.md.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "~> 2.20"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.2"
    }
    envbuilder = {
      source  = "coder/envbuilder"
      version = "~> 1.0"
    }
  }
}

variable "kubeconfig_path" {
  type        = string
  description = "(Optional) Path to a kubeconfig on the Coder server. Empty: KUBE_CONFIG_PATH in the server's environment, or, for a Coder running in the cluster, its Pod's service account."
  default     = ""
}

variable "namespace" {
  type        = string
  description = "Namespace the workspaces run in. It must exist, and hold the Secrets named by image_pull_secret and op_token_secret."
  default     = "egoengine"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name (a DNS-1123 label): lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit."
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
  description = "(Optional) Registry repository for envbuilder's layer cache, such as ghcr.io/veraticus/egoengine-cache. Empty turns caching off: every start rebuilds. The Pod pushes to it with the credentials of image_pull_secret."
  default     = ""
}

variable "cache_repo_docker_config" {
  type        = string
  description = "(Optional) Content of a Docker config.json with credentials for cache_repo, for the Coder server's check of the cache only (the Pod uses image_pull_secret). Sensitive: give it at push with --variable, or as TF_VAR_cache_repo_docker_config in the Coder server's environment."
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

variable "image_pull_secret" {
  type        = string
  description = "Name of a kubernetes.io/dockerconfigjson Secret in the namespace: the Pod's imagePullSecrets, and envbuilder's registry credentials (fallback image, cache). Empty: none."
  default     = "ghcr-pull"

  validation {
    condition     = var.image_pull_secret == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.image_pull_secret))
    error_message = "image_pull_secret must be the name of a Secret (lower-case letters, digits, '-' and '.'), or empty for none."
  }
}

variable "op_token_secret" {
  type        = string
  description = "Name of an Opaque Secret in the namespace whose key \"token\" is the 1Password service-account token; the container gets it as OP_SERVICE_ACCOUNT_TOKEN, when the Secret exists. Empty: none (the owner's Coder user secret is then the only way in)."
  default     = "egoengine-op-token"

  validation {
    condition     = var.op_token_secret == "" || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.op_token_secret))
    error_message = "op_token_secret must be the name of a Secret (lower-case letters, digits, '-' and '.'), or empty for none."
  }
}

variable "storage_class" {
  type        = string
  description = "StorageClass of the home claims. Empty: the cluster's default class. Changing it later leaves existing homes on their class."
  default     = ""
}

variable "egress_cidrs" {
  type        = list(string)
  description = "Private destinations the workspace may reach besides DNS and the internet, such as Coder's address when it is on a private network, or an in-cluster cache registry (CIDRs, e.g. 10.20.0.5/32)."
  default     = []

  validation {
    condition     = alltrue([for c in var.egress_cidrs : can(cidrhost(c, 0)) && try(cidrsubnet(c, 0, 0) == c, false)])
    error_message = "Each of egress_cidrs must be a CIDR with its host bits zero, such as 10.20.0.0/16 or 10.20.0.5/32."
  }
}

variable "coder_agent_url" {
  type        = string
  description = "(Optional) The address the Pods reach Coder at, such as http://10.20.0.5:3000, for a Coder whose access URL they cannot reach. Empty: the access URL."
  default     = ""

  validation {
    condition     = var.coder_agent_url == "" || can(regex("^https?://[^/[:space:]]+/?$", var.coder_agent_url))
    error_message = "coder_agent_url must be an http:// or https:// URL with no path, such as http://10.20.0.5:3000, or empty."
  }
}

provider "kubernetes" {
  config_path = var.kubeconfig_path != "" ? var.kubeconfig_path : null
}

provider "envbuilder" {}

data "coder_provisioner" "me" {}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

data "coder_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPU"
  description  = "Cores the workspace gets (request and limit)."
  type         = "number"
  mutable      = true
  order        = 10
  default      = 2
  icon         = "/emojis/1f5a5.png"
  validation {
    min = 1
    max = 8
  }
}

data "coder_parameter" "memory" {
  name         = "memory"
  display_name = "Memory"
  description  = "Memory the workspace gets, in GiB (request and limit)."
  type         = "number"
  mutable      = true
  order        = 11
  default      = 4
  icon         = "/icon/memory.svg"
  validation {
    min = 1
    max = 64
  }
}

data "coder_parameter" "home_size" {
  name         = "home_size"
  display_name = "Home size"
  description  = "Size of the persistent home, in GiB. Fixed once the workspace exists."
  type         = "number"
  mutable      = false
  order        = 12
  default      = 20
  icon         = "/emojis/1f4be.png"
  validation {
    min = 1
    max = 1000
  }
}

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
  # The user, home and name every egoengine workspace shares (see
  # modules/egoengine-container; its Coder URL, init script and labels are
  # Docker's and not used here).
  user            = module.container.user
  home            = module.container.home
  name            = replace(lower(module.container.name), "/[^-a-z0-9]/", "-")
  home_claim      = lower("coder-${data.coder_workspace.me.id}-home")
  egoengine_image = "ghcr.io/veraticus/nix-config/egoengine:${var.image_tag}"
  cache_enabled   = var.cache_repo != ""
  # The cache had this devcontainer: the Pod runs the built image, not the
  # builder.
  runs_cached_image = local.cache_enabled && try(envbuilder_cached_image.cached[0].exists, false)

  repo_url  = data.coder_parameter.repo.value == "custom" ? trimspace(data.coder_parameter.custom_repo_url.value) : data.coder_parameter.repo.value
  repo_name = try(regex("([^/:]+?)(?:\\.git)?/*$", local.repo_url)[0], "project")
  # Inside the home, one folder per repository, as in egoengine-envbuilder.
  workspace_folder     = "${local.home}/src/${local.repo_name}"
  docker_config_base64 = var.cache_repo_docker_config == "" ? "" : base64encode(var.cache_repo_docker_config)
  # Where the pull Secret is mounted; envbuilder reads $DOCKER_CONFIG/config.json.
  docker_config_dir = "/var/run/secrets/egoengine/docker"

  # How the Pod reaches Coder. The agent's init script downloads the agent
  # from, and points it at, the access URL; with coder_agent_url both go
  # there instead.
  access_origin = try(regex("^[a-z][a-z0-9+.-]*://[^/]+", data.coder_workspace.me.access_url), "")
  coder_url     = var.coder_agent_url != "" ? trimsuffix(var.coder_agent_url, "/") : data.coder_workspace.me.access_url
  init_script   = var.coder_agent_url != "" && local.access_origin != "" ? replace(module.agent.init_script, local.access_origin, local.coder_url) : module.agent.init_script

  # What the container needs whether it starts from a fresh build or from a
  # cached image: the agent's settings and how envbuilder hands over to it.
  agent_env = {
    CODER_AGENT_TOKEN       = module.agent.token
    CODER_AGENT_URL         = local.coder_url
    ENVBUILDER_INIT_COMMAND = "/bin/sh"
    ENVBUILDER_INIT_SCRIPT = templatefile("${path.module}/init-as-user.sh.tftpl", {
      user        = local.user
      home        = local.home
      init_script = local.init_script
    })
  }
  # The full envbuilder configuration without a cache. No
  # ENVBUILDER_DOCKER_CONFIG_BASE64: the Pod's registry credentials are the
  # pull Secret, mounted, not a value in the Deployment.
  builder_env = merge(local.agent_env, {
    ENVBUILDER_GIT_URL          = local.repo_url
    ENVBUILDER_WORKSPACE_FOLDER = local.workspace_folder
    ENVBUILDER_FALLBACK_IMAGE   = data.coder_parameter.fallback_image.value
    ENVBUILDER_CACHE_REPO       = var.cache_repo
    ENVBUILDER_PUSH_IMAGE       = local.cache_enabled ? "true" : ""
    ENVBUILDER_INSECURE         = var.insecure_cache_repo ? "true" : ""
  })
  # With a cache, the probe's configuration (the same one it looked the cache
  # up with), less the docker config it was given. A stop build probes
  # nothing, hence the try.
  pod_env = local.cache_enabled ? {
    for k, v in try(envbuilder_cached_image.cached[0].env_map, {}) : k => v if k != "ENVBUILDER_DOCKER_CONFIG_BASE64"
  } : { for k, v in local.builder_env : k => v if v != "" }

  # On every resource. Label values are at most 63 characters of
  # [A-Za-z0-9-_.], starting and ending with a letter or digit; Coder's ids
  # and names fit, and anything else is made to.
  labels = { for k, v in {
    "app.kubernetes.io/name"    = "egoengine-workspace"
    "app.kubernetes.io/part-of" = "egoengine"
    "com.coder.resource"        = "true"
    "com.coder.workspace.id"    = data.coder_workspace.me.id
    "com.coder.workspace.name"  = data.coder_workspace.me.name
    "com.coder.user.id"         = data.coder_workspace_owner.me.id
    "com.coder.user.username"   = data.coder_workspace_owner.me.name
  } : k => trim(substr(replace(v, "/[^-A-Za-z0-9_.]/", "-"), 0, 63), "-_.") }
  # What finds this workspace's Pod: labels that never change.
  selector = {
    "app.kubernetes.io/name" = local.labels["app.kubernetes.io/name"]
    "com.coder.workspace.id" = local.labels["com.coder.workspace.id"]
  }
}

module "agent" {
  source = "./modules/egoengine-agent"
  arch   = data.coder_provisioner.me.arch
  home   = local.home
}

# Only for the user, home and name: this template gives it no token.
module "container" {
  source            = "./modules/egoengine-container"
  workspace         = data.coder_workspace.me
  owner             = data.coder_workspace_owner.me
  agent_init_script = module.agent.init_script
}

module "ides" {
  source      = "./modules/egoengine-ides"
  agent_id    = module.agent.agent_id
  folder      = local.home
  start_count = data.coder_workspace.me.start_count
}

# Asks the cache repository whether this devcontainer is built already; if so
# the Pod starts straight from that image, with no rebuild. It runs in the
# Coder server's provisioner, which is why it has its own credentials.
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

# The persistent home. Not counted by start_count: it survives stops, starts
# and template updates; only deleting the workspace removes it.
resource "kubernetes_persistent_volume_claim_v1" "home" {
  metadata {
    name      = local.home_claim
    namespace = var.namespace
    labels    = local.labels
  }
  # A WaitForFirstConsumer class binds the claim only once the Pod is
  # scheduled, which a stopped workspace never is.
  wait_until_bound = false
  spec {
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = var.storage_class != "" ? var.storage_class : null
    resources {
      requests = {
        storage = "${data.coder_parameter.home_size.value}Gi"
      }
    }
  }
  # Each of these would replace the claim, and with it the home: a later
  # push with another storage_class or namespace leaves existing homes as
  # they are.
  lifecycle {
    ignore_changes = [metadata[0].namespace, spec]
  }
}

# One per workspace, not counted by start_count: it is in place before the
# first Pod exists and stays through every stop and start, so no Pod of the
# workspace ever runs without it. It selects nothing while the workspace is
# stopped.
resource "kubernetes_network_policy_v1" "workspace" {
  metadata {
    name      = lower("coder-${data.coder_workspace.me.id}")
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = {
        "com.coder.workspace.id" = local.labels["com.coder.workspace.id"]
      }
    }
    # Ingress listed with no ingress rule: nothing may connect to the Pod.
    # The agent dials out to Coder, and Coder's connections to the
    # workspace run through that.
    policy_types = ["Ingress", "Egress"]

    # DNS, from the cluster's resolver in kube-system.
    egress {
      to {
        namespace_selector {
          match_labels = {
            "kubernetes.io/metadata.name" = "kube-system"
          }
        }
      }
      ports {
        protocol = "UDP"
        port     = "53"
      }
      ports {
        protocol = "TCP"
        port     = "53"
      }
    }
    # The internet (1Password, GitHub, registries), but no private,
    # carrier-grade NAT or link-local address: not the cluster's Pods and
    # Services, not the nodes, not a cloud's metadata service.
    egress {
      to {
        ip_block {
          cidr   = "0.0.0.0/0"
          except = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]
        }
      }
    }
    # The private destinations the template admin named, one rule each (an
    # egress rule with no destination would allow everything).
    dynamic "egress" {
      for_each = var.egress_cidrs
      content {
        to {
          ip_block {
            cidr = egress.value
          }
        }
      }
    }
  }
}

resource "kubernetes_deployment_v1" "workspace" {
  count = data.coder_workspace.me.start_count
  # The policy and the home before the Pod.
  depends_on = [kubernetes_network_policy_v1.workspace, kubernetes_persistent_volume_claim_v1.home]
  # The build ends once the Deployment exists; the agent connecting is what
  # says the workspace runs (a devcontainer build may take any time).
  wait_for_rollout = false

  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    replicas = 1
    selector {
      match_labels = local.selector
    }
    # The home is ReadWriteOnce: the old Pod must be gone before the new one
    # mounts it.
    strategy {
      type = "Recreate"
    }

    template {
      metadata {
        labels = local.labels
      }

      spec {
        hostname = lower(data.coder_workspace.me.name)
        # As in the Docker templates: a stop gives the agent its shutdown, so
        # its stop script ends egoagent's daemon cleanly (30 s at most)
        # before the kubelet kills what is left.
        termination_grace_period_seconds = 60
        # The workspace has no business with the Kubernetes API, nor with the
        # Services of its namespace.
        automount_service_account_token = false
        enable_service_links            = false

        dynamic "image_pull_secrets" {
          for_each = var.image_pull_secret != "" ? [var.image_pull_secret] : []
          content {
            name = image_pull_secrets.value
          }
        }

        security_context {
          # The home belongs to group 1000 (joshsymonds), whatever the volume
          # held before.
          fs_group = 1000
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name              = "dev"
          image             = local.runs_cached_image ? envbuilder_cached_image.cached[0].image : var.envbuilder_image
          image_pull_policy = "IfNotPresent"

          dynamic "env" {
            for_each = nonsensitive(keys(local.pod_env))
            content {
              name  = env.value
              value = local.pod_env[env.value]
            }
          }
          dynamic "env" {
            for_each = var.image_pull_secret != "" ? [local.docker_config_dir] : []
            content {
              name  = "DOCKER_CONFIG"
              value = env.value
            }
          }
          # The 1Password token, read by the kubelet from the Secret: never a
          # value in this template, the Deployment or the Terraform state.
          # optional: without the Secret the Pod still starts, and the owner's
          # Coder user secret (which the agent gives egoagent, and which wins)
          # is the way in.
          dynamic "env" {
            for_each = var.op_token_secret != "" ? [var.op_token_secret] : []
            content {
              name = "OP_SERVICE_ACCOUNT_TOKEN"
              value_from {
                secret_key_ref {
                  name     = env.value
                  key      = "token"
                  optional = true
                }
              }
            }
          }

          security_context {
            # Root only because envbuilder unpacks the devcontainer's image
            # onto / as root; its init script then starts the agent as
            # joshsymonds (init-as-user.sh.tftpl). Nothing in the container
            # may gain privileges beyond that root.
            run_as_user                = 0
            run_as_group               = 0
            allow_privilege_escalation = false
            privileged                 = false
          }

          resources {
            requests = {
              cpu    = data.coder_parameter.cpu.value
              memory = "${data.coder_parameter.memory.value}Gi"
            }
            limits = {
              cpu    = data.coder_parameter.cpu.value
              memory = "${data.coder_parameter.memory.value}Gi"
            }
          }

          volume_mount {
            name       = "home"
            mount_path = local.home
          }
          dynamic "volume_mount" {
            for_each = var.image_pull_secret != "" ? [local.docker_config_dir] : []
            content {
              name       = "docker-config"
              mount_path = volume_mount.value
              read_only  = true
            }
          }
        }

        volume {
          name = "home"
          persistent_volume_claim {
            claim_name = local.home_claim
          }
        }
        dynamic "volume" {
          for_each = var.image_pull_secret != "" ? [var.image_pull_secret] : []
          content {
            name = "docker-config"
            secret {
              secret_name = volume.value
              items {
                key  = ".dockerconfigjson"
                path = "config.json"
                mode = "0400"
              }
            }
          }
        }
      }
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
  resource_id = kubernetes_deployment_v1.workspace[0].id
  item {
    key   = "namespace"
    value = var.namespace
  }
  item {
    key   = "repository"
    value = local.repo_url
  }
  item {
    key   = "image"
    value = kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].image
  }
  item {
    key   = "home claim"
    value = local.home_claim
  }
  item {
    key   = "cache repository"
    value = local.cache_enabled ? var.cache_repo : "off"
  }
}
