# Plan-level checks of egoengine-kubernetes: providers are mocked (no
# cluster, no registry, no Coder server), the code-server and JetBrains
# modules are local stand-ins (scripts/test-templates.sh puts them in place).
# Run with `make test-templates`.

mock_provider "coder" {
  mock_data "coder_workspace" {
    defaults = {
      id          = "6f1c2b9e-0000-4000-8000-000000000021"
      name        = "Dotfiles"
      start_count = 1
      access_url  = "http://127.0.0.1:3000"
    }
  }
  mock_data "coder_workspace_owner" {
    defaults = {
      id   = "6f1c2b9e-0000-4000-8000-000000000022"
      name = "joshsymonds"
    }
  }
  mock_data "coder_provisioner" {
    defaults = {
      arch = "amd64"
      os   = "linux"
    }
  }
  mock_resource "coder_agent" {
    defaults = {
      init_script = "#!/bin/sh\ncurl -fsSL http://127.0.0.1:3000/bin/coder-linux-amd64 -o /tmp/coder\nexport CODER_AGENT_URL=http://127.0.0.1:3000/\nexec /tmp/coder agent\n"
      token       = "mock-agent-token"
    }
  }
}

mock_provider "kubernetes" {}

# What the real provider returns for a cache hit: the cached image by digest,
# and the envbuilder settings the container needs, the docker config the
# probe was given among them.
mock_provider "envbuilder" {
  mock_resource "envbuilder_cached_image" {
    defaults = {
      exists = true
      image  = "ghcr.io/veraticus/egoengine-cache@sha256:0000000000000000000000000000000000000000000000000000000000000001"
      env_map = {
        CODER_AGENT_TOKEN               = "mock-agent-token"
        ENVBUILDER_CACHE_REPO           = "ghcr.io/veraticus/egoengine-cache"
        ENVBUILDER_GIT_URL              = "https://github.com/veraticus/dotfiles.git"
        ENVBUILDER_DOCKER_CONFIG_BASE64 = "eyJhdXRocyI6e319"
      }
    }
  }
}

# The values Coder passes for the parameters: Custom repository, the
# fallback image, CPU, memory and home size at their defaults.
override_data {
  target = data.coder_parameter.repo
  values = {
    value = "custom"
  }
}
override_data {
  target = data.coder_parameter.custom_repo_url
  values = {
    value = "https://github.com/veraticus/dotfiles.git"
  }
}
override_data {
  target = data.coder_parameter.fallback_image
  values = {
    value = "ghcr.io/veraticus/nix-config/egoengine:abc1234"
  }
}
override_data {
  target = data.coder_parameter.cpu
  values = {
    value = "2"
  }
}
override_data {
  target = data.coder_parameter.memory
  values = {
    value = "4"
  }
}
override_data {
  target = data.coder_parameter.home_size
  values = {
    value = "20"
  }
}

variables {
  image_tag = "abc1234"
}

# The 1Password token: no Terraform value carries it; the kubelet reads it
# from the Secret.
run "token_only_from_the_secret" {
  command = apply

  assert {
    condition = [for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : jsonencode([e.value, e.value_from]) if e.name == "OP_SERVICE_ACCOUNT_TOKEN"] == [jsonencode([null, [{
      config_map_key_ref = [], field_ref = [], resource_field_ref = [],
      secret_key_ref     = [{ name = "egoengine-op-token", key = "token", optional = true }]
    }]])]
    error_message = "OP_SERVICE_ACCOUNT_TOKEN must come from the Secret (value_from.secret_key_ref egoengine-op-token, key token, optional), never as a value, and be set once."
  }
  assert {
    condition     = !contains(keys(module.agent.visible_to_viewers.agent_env == null ? {} : module.agent.visible_to_viewers.agent_env), "OP_SERVICE_ACCOUNT_TOKEN")
    error_message = "OP_SERVICE_ACCOUNT_TOKEN must not be set in coder_agent.env."
  }
  assert {
    condition     = !issensitive(jsonencode(module.agent.visible_to_viewers))
    error_message = "A sensitive value reaches what Coder shows viewers (agent env, agent folder, metadata or script text)."
  }
  assert {
    condition     = !contains(keys(local.pod_env), "OP_SERVICE_ACCOUNT_TOKEN")
    error_message = "The token must not be among the envbuilder values the Deployment holds."
  }
}

run "no_token_secret_no_env" {
  command = apply
  variables {
    op_token_secret = ""
  }

  assert {
    condition     = length([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : e if e.name == "OP_SERVICE_ACCOUNT_TOKEN"]) == 0
    error_message = "With op_token_secret empty the container must get no OP_SERVICE_ACCOUNT_TOKEN."
  }
}

run "pod_and_container_security" {
  command = apply

  assert {
    condition = [for c in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container : {
      run_as_user                = c.security_context[0].run_as_user
      allow_privilege_escalation = c.security_context[0].allow_privilege_escalation
      privileged                 = c.security_context[0].privileged
      add                        = length(try(c.security_context[0].capabilities[0].add, []))
    }] == [{ run_as_user = "0", allow_privilege_escalation = false, privileged = false, add = 0 }]
    error_message = "The one container must run as root for envbuilder only, with allow_privilege_escalation = false, privileged = false and no added capabilities."
  }
  assert {
    condition     = kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].security_context[0].fs_group == "1000" && kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].security_context[0].seccomp_profile[0].type == "RuntimeDefault"
    error_message = "The Pod must have fs_group 1000 (the home is joshsymonds's) and the RuntimeDefault seccomp profile."
  }
  assert {
    condition = (
      !kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].automount_service_account_token &&
      !kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].enable_service_links
    )
    error_message = "The Pod must get no service account token and no service links."
  }
  assert {
    condition = (
      !coalesce(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].host_network, false) &&
      !coalesce(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].host_pid, false) &&
      !coalesce(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].host_ipc, false)
    )
    error_message = "The Pod must not share the host's network, PID or IPC namespace."
  }
  assert {
    condition     = alltrue([for v in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].volume : length(v.host_path) == 0]) && !strcontains(jsonencode([for v in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].volume : v.host_path]), "path")
    error_message = "No volume of the Pod may be a hostPath."
  }
}

run "stop_gives_the_agent_and_egoagent_time" {
  command = apply

  assert {
    condition     = module.agent.visible_to_viewers.scripts.egoagent_stop.run_on_stop && strcontains(module.agent.visible_to_viewers.scripts.egoagent_stop.script, "kill -TERM")
    error_message = "A stop script must end egoagent's daemon with SIGTERM when the agent stops."
  }
  # Unset, the grace is Kubernetes' default of 30 s.
  assert {
    condition     = coalesce(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].termination_grace_period_seconds, 30) > module.agent.visible_to_viewers.scripts.egoagent_stop.timeout + 5
    error_message = "termination_grace_period_seconds must leave the agent time to run its stop scripts."
  }
}

run "deployment" {
  command = apply

  assert {
    condition     = kubernetes_deployment_v1.workspace[0].metadata[0].name == "coder-joshsymonds-dotfiles" && kubernetes_deployment_v1.workspace[0].metadata[0].namespace == "egoengine"
    error_message = "The Deployment must be coder-<owner>-<workspace> in lower case, in the namespace egoengine."
  }
  assert {
    condition     = kubernetes_deployment_v1.workspace[0].spec[0].replicas == "1" && kubernetes_deployment_v1.workspace[0].spec[0].strategy[0].type == "Recreate" && !kubernetes_deployment_v1.workspace[0].wait_for_rollout
    error_message = "The Deployment must run one replica, replaced with the Recreate strategy (the home is ReadWriteOnce), without waiting for the rollout."
  }
  assert {
    condition     = [for c in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container : [c.name, c.image, c.image_pull_policy]] == [["dev", "ghcr.io/coder/envbuilder:1.3.0", "IfNotPresent"]]
    error_message = "The Pod must have one container, dev, running the pinned envbuilder image (IfNotPresent) without a cache."
  }
  assert {
    condition = alltrue([for k, v in kubernetes_deployment_v1.workspace[0].spec[0].selector[0].match_labels : lookup(kubernetes_deployment_v1.workspace[0].spec[0].template[0].metadata[0].labels, k, null) == v]) && kubernetes_deployment_v1.workspace[0].spec[0].selector[0].match_labels == tomap({
      "app.kubernetes.io/name" = "egoengine-workspace"
      "com.coder.workspace.id" = "6f1c2b9e-0000-4000-8000-000000000021"
    })
    error_message = "The Deployment must select its Pods by app.kubernetes.io/name and the workspace id, labels its Pod template carries."
  }
}

# A stop build: the Deployment goes, the home and the NetworkPolicy stay.
# Before any run that names the claim as one resource: with a count there,
# those runs stop on an error, this one fails on its check.
run "stop_keeps_the_home" {
  command = apply
  override_data {
    target = data.coder_workspace.me
    values = {
      id          = "6f1c2b9e-0000-4000-8000-000000000021"
      name        = "Dotfiles"
      start_count = 0
      access_url  = "http://127.0.0.1:3000"
    }
  }

  assert {
    condition     = length(kubernetes_deployment_v1.workspace) == 0 && length(coder_metadata.workspace) == 0
    error_message = "A stopped workspace has no Deployment."
  }
  # flatten: one expression for a single claim and for a counted list of
  # them, so that a count there fails this check instead of an error.
  assert {
    condition     = [for c in flatten([kubernetes_persistent_volume_claim_v1.home]) : c.metadata[0].name] == ["coder-6f1c2b9e-0000-4000-8000-000000000021-home"]
    error_message = "The home claim must not be counted by start_count: a stop must keep it."
  }
  assert {
    condition     = length(flatten([kubernetes_network_policy_v1.workspace])) == 1
    error_message = "The NetworkPolicy must stay while the workspace is stopped, so that it is in place before any Pod of the workspace."
  }
}

run "home_claim" {
  command = apply

  assert {
    condition     = kubernetes_persistent_volume_claim_v1.home.metadata[0].name == "coder-6f1c2b9e-0000-4000-8000-000000000021-home" && kubernetes_persistent_volume_claim_v1.home.metadata[0].namespace == "egoengine"
    error_message = "The home claim must be coder-<workspace id>-home in the namespace."
  }
  assert {
    condition     = kubernetes_persistent_volume_claim_v1.home.spec[0].access_modes == toset(["ReadWriteOnce"]) && kubernetes_persistent_volume_claim_v1.home.spec[0].resources[0].requests.storage == "20Gi" && !kubernetes_persistent_volume_claim_v1.home.wait_until_bound
    error_message = "The home claim must be ReadWriteOnce, home_size GiB, and not wait to be bound (WaitForFirstConsumer classes bind it only for a Pod)."
  }
  assert {
    condition = [for m in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].volume_mount : m.mount_path if m.name == "home"] == ["/home/joshsymonds"] && [
      for v in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].volume : v.persistent_volume_claim[0].claim_name if v.name == "home"
    ] == [kubernetes_persistent_volume_claim_v1.home.metadata[0].name]
    error_message = "The home claim must be mounted at /home/joshsymonds."
  }
  assert {
    condition     = module.agent.visible_to_viewers.agent_dir == "/home/joshsymonds" && module.ides.folder == "/home/joshsymonds"
    error_message = "The agent folder and the IDEs' folder must be /home/joshsymonds."
  }
}

run "labels" {
  command = apply

  assert {
    condition = alltrue([for l in [
      kubernetes_deployment_v1.workspace[0].metadata[0].labels,
      kubernetes_deployment_v1.workspace[0].spec[0].template[0].metadata[0].labels,
      kubernetes_persistent_volume_claim_v1.home.metadata[0].labels,
      kubernetes_network_policy_v1.workspace.metadata[0].labels,
      ] : l == tomap({
        "app.kubernetes.io/name"    = "egoengine-workspace"
        "app.kubernetes.io/part-of" = "egoengine"
        "com.coder.resource"        = "true"
        "com.coder.workspace.id"    = "6f1c2b9e-0000-4000-8000-000000000021"
        "com.coder.workspace.name"  = "Dotfiles"
        "com.coder.user.id"         = "6f1c2b9e-0000-4000-8000-000000000022"
        "com.coder.user.username"   = "joshsymonds"
    })])
    error_message = "The Deployment, its Pods, the home claim and the NetworkPolicy must carry the egoengine and com.coder.* labels."
  }
}

run "label_values_are_made_valid" {
  command = apply
  override_data {
    target = data.coder_workspace_owner.me
    values = {
      id   = "6f1c2b9e-0000-4000-8000-000000000022"
      name = "josh@example.com!"
    }
  }

  assert {
    condition     = kubernetes_persistent_volume_claim_v1.home.metadata[0].labels["com.coder.user.username"] == "josh-example.com"
    error_message = "A label value must be made valid: other characters become '-', and it starts and ends with a letter or digit."
  }
}

run "network_policy" {
  command = apply

  assert {
    condition     = kubernetes_network_policy_v1.workspace.spec[0].pod_selector[0].match_labels == tomap({ "com.coder.workspace.id" = "6f1c2b9e-0000-4000-8000-000000000021" }) && kubernetes_network_policy_v1.workspace.metadata[0].namespace == "egoengine"
    error_message = "The NetworkPolicy must select the workspace's Pods by the workspace id label, in the namespace."
  }
  assert {
    condition     = kubernetes_network_policy_v1.workspace.spec[0].policy_types == tolist(["Ingress", "Egress"]) && length(kubernetes_network_policy_v1.workspace.spec[0].ingress) == 0
    error_message = "The NetworkPolicy must cover Ingress and Egress, with no ingress rule at all: nothing connects to the Pod."
  }
  assert {
    condition = jsonencode([for e in kubernetes_network_policy_v1.workspace.spec[0].egress : {
      to    = [for t in e.to : { ns = [for n in t.namespace_selector : n.match_labels], pods = length(t.pod_selector), ip = [for b in t.ip_block : { cidr = b.cidr, except = sort(coalesce(b.except, [])) }] }]
      ports = sort([for p in e.ports : "${p.protocol}/${p.port}"])
      }]) == jsonencode([
      { to = [{ ns = [{ "kubernetes.io/metadata.name" = "kube-system" }], pods = 0, ip = [] }], ports = ["TCP/53", "UDP/53"] },
      { to = [{ ns = [], pods = 0, ip = [{ cidr = "0.0.0.0/0", except = sort(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]) }] }], ports = [] },
    ])
    error_message = "Egress must be exactly DNS (UDP and TCP 53) to kube-system, and the internet: 0.0.0.0/0 except 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 and 169.254.0.0/16."
  }
}

run "network_policy_extra_destinations" {
  command = apply
  variables {
    egress_cidrs = ["10.20.0.5/32", "192.168.7.0/24"]
  }

  assert {
    condition = jsonencode([for e in slice(kubernetes_network_policy_v1.workspace.spec[0].egress, 2, length(kubernetes_network_policy_v1.workspace.spec[0].egress)) : {
      to    = [for t in e.to : { ns = length(t.namespace_selector), pods = length(t.pod_selector), ip = [for b in t.ip_block : { cidr = b.cidr, except = length(coalesce(b.except, [])) }] }]
      ports = length(e.ports)
      }]) == jsonencode([
      { to = [{ ns = 0, pods = 0, ip = [{ cidr = "10.20.0.5/32", except = 0 }] }], ports = 0 },
      { to = [{ ns = 0, pods = 0, ip = [{ cidr = "192.168.7.0/24", except = 0 }] }], ports = 0 },
    ])
    error_message = "Each of egress_cidrs must add one egress rule to that CIDR alone."
  }
  assert {
    condition     = alltrue([for e in kubernetes_network_policy_v1.workspace.spec[0].egress : length(e.to) > 0])
    error_message = "Every egress rule must name its destinations: a rule without one allows all."
  }
}

run "pull_secret_wiring" {
  command = apply

  assert {
    condition     = [for s in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].image_pull_secrets : s.name] == ["ghcr-pull"]
    error_message = "The Pod must pull its images with the Secret ghcr-pull."
  }
  assert {
    condition = [for v in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].volume : {
      secret = v.secret[0].secret_name
      items  = [for i in v.secret[0].items : [i.key, i.path, i.mode]]
      } if v.name == "docker-config"] == [{
      secret = "ghcr-pull"
      items  = [[".dockerconfigjson", "config.json", "0400"]]
    }]
    error_message = "The pull Secret's .dockerconfigjson must be mounted as config.json, mode 0400."
  }
  assert {
    condition     = [for m in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].volume_mount : [m.mount_path, m.read_only] if m.name == "docker-config"] == [["/var/run/secrets/egoengine/docker", true]]
    error_message = "The docker config must be mounted read-only at /var/run/secrets/egoengine/docker."
  }
  assert {
    condition     = [for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : nonsensitive(e.value) if e.name == "DOCKER_CONFIG"] == ["/var/run/secrets/egoengine/docker"]
    error_message = "DOCKER_CONFIG must name the mounted folder, so that envbuilder reads its config.json."
  }
}

run "no_pull_secret" {
  command = apply
  variables {
    image_pull_secret = ""
  }

  assert {
    condition     = length([for v in kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].volume : v if v.name == "docker-config"]) == 0 && length([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : e if e.name == "DOCKER_CONFIG"]) == 0
    error_message = "With image_pull_secret empty there is no docker config volume and no DOCKER_CONFIG."
  }
}

run "cpu_and_memory_from_parameters" {
  command = apply
  override_data {
    target = data.coder_parameter.cpu
    values = {
      value = "3"
    }
  }
  override_data {
    target = data.coder_parameter.memory
    values = {
      value = "6"
    }
  }

  assert {
    condition = (
      kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].resources[0].requests == tomap({ cpu = "3", memory = "6Gi" }) &&
      kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].resources[0].limits == tomap({ cpu = "3", memory = "6Gi" })
    )
    error_message = "The container's requests and limits must be the cpu and memory parameters (cores, GiB)."
  }
}

run "parameters" {
  command = plan

  assert {
    condition     = [data.coder_parameter.cpu.default, data.coder_parameter.memory.default, data.coder_parameter.home_size.default] == ["2", "4", "20"] && data.coder_parameter.cpu.mutable && data.coder_parameter.memory.mutable && !data.coder_parameter.home_size.mutable
    error_message = "cpu (2) and memory (4 GiB) must be mutable, home_size (20 GiB) fixed at creation."
  }
  assert {
    condition     = data.coder_parameter.fallback_image.default == "ghcr.io/veraticus/nix-config/egoengine:abc1234"
    error_message = "fallback_image must default to the egoengine image at image_tag."
  }
}

run "builds_without_a_cache" {
  command = apply

  assert {
    condition = length(envbuilder_cached_image.cached) == 0 && length(setsubtract([
      "ENVBUILDER_GIT_URL=https://github.com/veraticus/dotfiles.git",
      "ENVBUILDER_WORKSPACE_FOLDER=/home/joshsymonds/src/dotfiles",
      "ENVBUILDER_FALLBACK_IMAGE=ghcr.io/veraticus/nix-config/egoengine:abc1234",
      "ENVBUILDER_INIT_COMMAND=/bin/sh",
      "CODER_AGENT_TOKEN=mock-agent-token",
      "CODER_AGENT_URL=http://127.0.0.1:3000",
    ], [for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : "${e.name}=${nonsensitive(coalesce(e.value, "-"))}"])) == 0
    error_message = "The envbuilder container lacks part of its configuration (repository, ENVBUILDER_WORKSPACE_FOLDER, fallback image, init command, agent token or URL)."
  }
  assert {
    condition     = length([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : e if can(regex("^ENVBUILDER_(CACHE_REPO|PUSH_IMAGE|DOCKER_CONFIG_BASE64|INSECURE)$", e.name))]) == 0
    error_message = "Without a cache the container must not get cache settings (empty ones are left out)."
  }
}

run "init_script_runs_as_joshsymonds" {
  command = apply

  assert {
    condition     = strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "if [ \"$me\" = \"joshsymonds\" ]; then") && strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "setpriv --reuid=\"joshsymonds\"")
    error_message = "ENVBUILDER_INIT_SCRIPT must start the agent as joshsymonds."
  }
  assert {
    condition     = strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "curl -fsSL http://127.0.0.1:3000/bin/coder-linux-amd64") && !strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "host.docker.internal")
    error_message = "ENVBUILDER_INIT_SCRIPT must hold the agent's init script with the access URL as it is (no Docker host rewrite)."
  }
  assert {
    condition     = contains([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : "${e.name}=${nonsensitive(coalesce(e.value, "-"))}"], "ENVBUILDER_INIT_SCRIPT=${nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT)}")
    error_message = "The container must get that ENVBUILDER_INIT_SCRIPT."
  }
}

run "coder_agent_url_reroutes_the_agent" {
  command = apply
  variables {
    coder_agent_url = "http://10.20.0.5:3000/"
  }

  assert {
    condition     = nonsensitive(local.pod_env.CODER_AGENT_URL) == "http://10.20.0.5:3000"
    error_message = "CODER_AGENT_URL must be coder_agent_url."
  }
  assert {
    condition     = strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "curl -fsSL http://10.20.0.5:3000/bin/coder-linux-amd64") && strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "export CODER_AGENT_URL=http://10.20.0.5:3000/") && !strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "127.0.0.1")
    error_message = "With coder_agent_url the init script must download the agent from, and point it at, that address."
  }
}

run "cache_hit_starts_from_the_cached_image" {
  command = apply
  variables {
    cache_repo               = "ghcr.io/veraticus/egoengine-cache"
    cache_repo_docker_config = "{\"auths\":{\"ghcr.io\":{\"auth\":\"am9zaDpub3QtYS10b2tlbg==\"}}}"
  }

  assert {
    condition     = issensitive(var.cache_repo_docker_config)
    error_message = "cache_repo_docker_config must be a sensitive variable."
  }
  assert {
    condition     = nonsensitive(envbuilder_cached_image.cached[0].docker_config_base64) == base64encode("{\"auths\":{\"ghcr.io\":{\"auth\":\"am9zaDpub3QtYS10b2tlbg==\"}}}") && envbuilder_cached_image.cached[0].cache_repo == "ghcr.io/veraticus/egoengine-cache"
    error_message = "The cached-image probe must look in cache_repo with the docker config, base64-encoded."
  }
  assert {
    condition     = envbuilder_cached_image.cached[0].workspace_folder == "/home/joshsymonds/src/dotfiles" && envbuilder_cached_image.cached[0].git_url == "https://github.com/veraticus/dotfiles.git" && envbuilder_cached_image.cached[0].fallback_image == "ghcr.io/veraticus/nix-config/egoengine:abc1234" && nonsensitive(envbuilder_cached_image.cached[0].extra_env.ENVBUILDER_PUSH_IMAGE) == "true"
    error_message = "The probe must use the same repository, workspace folder and fallback image as a build, and builds must push, or the cache is never found."
  }
  assert {
    condition     = kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].image == "ghcr.io/veraticus/egoengine-cache@sha256:0000000000000000000000000000000000000000000000000000000000000001"
    error_message = "On a cache hit the container must start from the cached image (no rebuild)."
  }
  assert {
    condition     = toset([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : e.name]) == toset(["CODER_AGENT_TOKEN", "ENVBUILDER_CACHE_REPO", "ENVBUILDER_GIT_URL", "DOCKER_CONFIG", "OP_SERVICE_ACCOUNT_TOKEN"])
    error_message = "On a cache hit the container's env must be the provider's env without ENVBUILDER_DOCKER_CONFIG_BASE64, plus DOCKER_CONFIG and the token's Secret reference."
  }
}

run "cache_miss_runs_the_builder" {
  command = apply
  variables {
    cache_repo = "ghcr.io/veraticus/egoengine-cache"
  }
  override_resource {
    target = envbuilder_cached_image.cached
    values = {
      exists  = false
      image   = "ghcr.io/coder/envbuilder:1.3.0"
      env_map = { ENVBUILDER_CACHE_REPO = "ghcr.io/veraticus/egoengine-cache", ENVBUILDER_PUSH_IMAGE = "true" }
    }
  }

  assert {
    condition     = kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].image == "ghcr.io/coder/envbuilder:1.3.0" && contains([for e in nonsensitive(kubernetes_deployment_v1.workspace[0].spec[0].template[0].spec[0].container[0].env) : e.name], "ENVBUILDER_PUSH_IMAGE")
    error_message = "On a cache miss the container must run the envbuilder image and push what it builds."
  }
}

run "metadata" {
  command = apply

  assert {
    condition = { for i in coder_metadata.workspace[0].item : i.key => i.value } == {
      "namespace"        = "egoengine"
      "repository"       = "https://github.com/veraticus/dotfiles.git"
      "image"            = "ghcr.io/coder/envbuilder:1.3.0"
      "home claim"       = "coder-6f1c2b9e-0000-4000-8000-000000000021-home"
      "cache repository" = "off"
    }
    error_message = "The Deployment's metadata must show the namespace, repository, image, home claim and cache repository."
  }
}

run "egoagent_start_script_and_metadata" {
  command = apply

  assert {
    condition     = module.agent.visible_to_viewers.scripts.egoagent.run_on_start && can(regex("(?s)\\bstep egoagent image link-home\\b.*\\bstep egoagent start\\b", module.agent.visible_to_viewers.scripts.egoagent.script))
    error_message = "The egoagent script must run on start: `egoagent image link-home`, then `egoagent start`."
  }
  assert {
    condition = toset([for m in module.agent.visible_to_viewers.metadata : m.script]) == toset([
      "coder stat cpu",
      "coder stat mem",
      "coder stat disk --path /home/joshsymonds",
      "egoagent metadata",
    ])
    error_message = "Metadata must be exactly CPU, RAM and home disk via `coder stat`, and `egoagent metadata`."
  }
}

run "bad_namespace_is_refused" {
  command = plan
  variables {
    namespace = "Ego_Engine"
  }
  expect_failures = [var.namespace]
}

run "bad_cidr_is_refused" {
  command = plan
  variables {
    egress_cidrs = ["10.20.0.0/16", "not-a-cidr"]
  }
  expect_failures = [var.egress_cidrs]
}

run "cidr_with_host_bits_is_refused" {
  command = plan
  variables {
    egress_cidrs = ["10.20.0.5/16"]
  }
  expect_failures = [var.egress_cidrs]
}

run "coder_agent_url_with_a_path_is_refused" {
  command = plan
  variables {
    coder_agent_url = "http://10.20.0.5:3000/coder"
  }
  expect_failures = [var.coder_agent_url]
}

run "latest_is_refused" {
  command = plan
  variables {
    image_tag = "latest"
  }
  expect_failures = [var.image_tag]
}

run "custom_repository_needs_a_url" {
  command = plan
  override_data {
    target = data.coder_parameter.custom_repo_url
    values = {
      value = ""
    }
  }
  expect_failures = [kubernetes_deployment_v1.workspace]
}
