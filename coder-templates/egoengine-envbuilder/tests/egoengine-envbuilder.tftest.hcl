# Plan-level checks of egoengine-envbuilder: providers are mocked (no Docker,
# no registry, no Coder server), the code-server and JetBrains modules are
# local stand-ins (scripts/test-templates.sh puts them in place).
# Run with `make test-templates`.

mock_provider "coder" {
  mock_data "coder_workspace" {
    defaults = {
      id          = "6f1c2b9e-0000-4000-8000-000000000011"
      name        = "Dotfiles"
      start_count = 1
      access_url  = "http://127.0.0.1:3000"
    }
  }
  mock_data "coder_workspace_owner" {
    defaults = {
      id   = "6f1c2b9e-0000-4000-8000-000000000012"
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
      init_script = "#!/bin/sh\ncurl -fsSL http://127.0.0.1:3000/bin/coder-linux-amd64 -o /tmp/coder\nexec /tmp/coder agent\n"
      token       = "mock-agent-token"
    }
  }
}

mock_provider "docker" {}

# What the real provider returns for a cache hit: the cached image by digest,
# and the envbuilder settings the container needs (the agent's among them).
mock_provider "envbuilder" {
  mock_resource "envbuilder_cached_image" {
    defaults = {
      exists = true
      image  = "ghcr.io/veraticus/egoengine-cache@sha256:0000000000000000000000000000000000000000000000000000000000000001"
      env = [
        "CODER_AGENT_TOKEN=mock-agent-token",
        "ENVBUILDER_CACHE_REPO=ghcr.io/veraticus/egoengine-cache",
        "ENVBUILDER_GIT_URL=https://github.com/veraticus/dotfiles.git",
      ]
    }
  }
}

# The values Coder passes for the parameters: Custom repository, and the
# fallback image left at its default.
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

variables {
  image_tag                = "abc1234"
  op_service_account_token = "ops_TEST-SENTINEL-not-a-real-token"
}

run "builds_without_a_cache" {
  command = apply

  assert {
    condition     = length(envbuilder_cached_image.cached) == 0 && docker_container.workspace[0].image == "ghcr.io/coder/envbuilder:1.3.0"
    error_message = "Without cache_repo the container must run the pinned envbuilder image and probe no cache."
  }
  assert {
    condition = length(setsubtract([
      "ENVBUILDER_GIT_URL=https://github.com/veraticus/dotfiles.git",
      "ENVBUILDER_WORKSPACE_FOLDER=/home/joshsymonds/src/dotfiles",
      "ENVBUILDER_FALLBACK_IMAGE=ghcr.io/veraticus/nix-config/egoengine:abc1234",
      "ENVBUILDER_INIT_COMMAND=/bin/sh",
      "CODER_AGENT_TOKEN=mock-agent-token",
      "CODER_AGENT_URL=http://host.docker.internal:3000",
    ], nonsensitive(docker_container.workspace[0].env))) == 0
    error_message = "The envbuilder container lacks part of its configuration (repository, ENVBUILDER_WORKSPACE_FOLDER, fallback image, init command, agent token or URL)."
  }
  assert {
    condition     = length([for e in nonsensitive(docker_container.workspace[0].env) : e if can(regex("^ENVBUILDER_(CACHE_REPO|PUSH_IMAGE|DOCKER_CONFIG_BASE64|INSECURE)=", e))]) == 0
    error_message = "Without a cache the container must not get cache settings (empty ones are left out)."
  }
  assert {
    condition     = !anytrue([for e in nonsensitive(docker_container.workspace[0].env) : startswith(e, "ENVBUILDER_WORKDIR=")])
    error_message = "ENVBUILDER_WORKDIR does not exist in envbuilder; the folder is ENVBUILDER_WORKSPACE_FOLDER."
  }
}

run "init_script_runs_as_joshsymonds" {
  command = apply

  assert {
    condition     = strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "if [ \"$me\" = \"joshsymonds\" ]; then") && strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "setpriv --reuid=\"joshsymonds\"")
    error_message = "ENVBUILDER_INIT_SCRIPT must start the agent as joshsymonds."
  }
  assert {
    condition     = strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "curl -fsSL http://host.docker.internal:3000/bin/coder-linux-amd64") && !strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "127.0.0.1")
    error_message = "ENVBUILDER_INIT_SCRIPT must hold the agent's init script with 127.0.0.1 rewritten to host.docker.internal."
  }
  assert {
    condition     = contains(nonsensitive(docker_container.workspace[0].env), "ENVBUILDER_INIT_SCRIPT=${nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT)}")
    error_message = "The container must get that ENVBUILDER_INIT_SCRIPT."
  }
}

run "cache_repo_docker_config_and_cached_image" {
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
    condition     = envbuilder_cached_image.cached[0].cache_repo == "ghcr.io/veraticus/egoengine-cache" && envbuilder_cached_image.cached[0].builder_image == "ghcr.io/coder/envbuilder:1.3.0"
    error_message = "The cached-image probe must look in cache_repo with the pinned envbuilder image."
  }
  assert {
    condition     = nonsensitive(envbuilder_cached_image.cached[0].docker_config_base64) == base64encode("{\"auths\":{\"ghcr.io\":{\"auth\":\"am9zaDpub3QtYS10b2tlbg==\"}}}")
    error_message = "The cached-image probe must get the docker config, base64-encoded."
  }
  assert {
    condition     = envbuilder_cached_image.cached[0].workspace_folder == "/home/joshsymonds/src/dotfiles" && envbuilder_cached_image.cached[0].git_url == "https://github.com/veraticus/dotfiles.git" && envbuilder_cached_image.cached[0].fallback_image == "ghcr.io/veraticus/nix-config/egoengine:abc1234"
    error_message = "The probe must use the same repository, workspace folder and fallback image as a build, or it never finds the cache."
  }
  assert {
    condition     = nonsensitive(envbuilder_cached_image.cached[0].extra_env.ENVBUILDER_PUSH_IMAGE) == "true"
    error_message = "With a cache repository, builds must push their image so the next start finds it."
  }
  assert {
    condition     = docker_container.workspace[0].image == "ghcr.io/veraticus/egoengine-cache@sha256:0000000000000000000000000000000000000000000000000000000000000001"
    error_message = "On a cache hit the container must start from the cached image (no rebuild)."
  }
  assert {
    condition     = toset(nonsensitive(docker_container.workspace[0].env)) == toset(["CODER_AGENT_TOKEN=mock-agent-token", "ENVBUILDER_CACHE_REPO=ghcr.io/veraticus/egoengine-cache", "ENVBUILDER_GIT_URL=https://github.com/veraticus/dotfiles.git", "OP_SERVICE_ACCOUNT_TOKEN=ops_TEST-SENTINEL-not-a-real-token"])
    error_message = "On a cache hit the container's env must be the provider's env plus the 1Password token, nothing else."
  }
  assert {
    condition     = !strcontains(jsonencode(nonsensitive(envbuilder_cached_image.cached[0].extra_env)), "ops_TEST-SENTINEL")
    error_message = "The 1Password token must not be given to the cached-image probe."
  }
}

run "builder_gets_cache_settings" {
  command = apply
  variables {
    cache_repo               = "ghcr.io/veraticus/egoengine-cache"
    cache_repo_docker_config = "{\"auths\":{}}"
  }

  assert {
    condition = length(setsubtract([
      "ENVBUILDER_CACHE_REPO=ghcr.io/veraticus/egoengine-cache",
      "ENVBUILDER_PUSH_IMAGE=true",
      "ENVBUILDER_DOCKER_CONFIG_BASE64=${base64encode("{\"auths\":{}}")}",
    ], nonsensitive(local.builder_env_list))) == 0
    error_message = "A build with a cache repository must get the cache, push and docker config settings."
  }
}

# BEGIN shared checks (the token; stop, network): the same
# text in both templates' tests; scripts/test-templates.sh fails when the
# copies differ. Edit both at once.
run "token_reaches_only_the_container_env" {
  command = apply

  assert {
    condition     = issensitive(var.op_service_account_token)
    error_message = "op_service_account_token must be a sensitive variable."
  }
  assert {
    condition     = contains(nonsensitive(docker_container.workspace[0].env), "OP_SERVICE_ACCOUNT_TOKEN=ops_TEST-SENTINEL-not-a-real-token")
    error_message = "The container's environment must carry OP_SERVICE_ACCOUNT_TOKEN."
  }
  assert {
    condition     = length([for e in nonsensitive(docker_container.workspace[0].env) : e if strcontains(e, "ops_TEST-SENTINEL")]) == 1
    error_message = "The token must appear exactly once in the container's environment."
  }
  assert {
    condition     = !issensitive(jsonencode(module.agent.visible_to_viewers))
    error_message = "A sensitive value reaches what Coder shows viewers (agent env, agent folder, metadata or script text)."
  }
  assert {
    condition     = !strcontains(jsonencode(module.agent.visible_to_viewers), "ops_TEST-SENTINEL")
    error_message = "The token leaked into what Coder shows viewers (agent env, agent folder, metadata or script text)."
  }
  assert {
    condition     = !contains(keys(module.agent.visible_to_viewers.agent_env == null ? {} : module.agent.visible_to_viewers.agent_env), "OP_SERVICE_ACCOUNT_TOKEN")
    error_message = "OP_SERVICE_ACCOUNT_TOKEN must not be set in coder_agent.env."
  }
  assert {
    condition     = !strcontains(jsonencode(docker_container.workspace[0].labels), "ops_TEST-SENTINEL") && !strcontains(jsonencode(docker_container.workspace[0].name), "ops_TEST-SENTINEL")
    error_message = "The token must not appear in the container's name or labels."
  }
  assert {
    condition     = !strcontains(jsonencode(coder_metadata.workspace[0].item), "ops_TEST-SENTINEL")
    error_message = "The token must not appear in the workspace's coder_metadata."
  }
}

run "no_token_no_variable" {
  command = apply
  variables {
    op_service_account_token = ""
  }

  assert {
    condition     = length([for e in nonsensitive(docker_container.workspace[0].env) : e if startswith(e, "OP_SERVICE_ACCOUNT_TOKEN=")]) == 0
    error_message = "An empty token must be left out of the environment, not set to an empty string."
  }
}
run "stop_gives_the_agent_and_egoagent_time" {
  command = apply

  assert {
    condition     = module.agent.visible_to_viewers.scripts.egoagent_stop.run_on_stop && strcontains(module.agent.visible_to_viewers.scripts.egoagent_stop.script, "kill -TERM")
    error_message = "A stop script must end egoagent's daemon with SIGTERM when the agent stops."
  }
  assert {
    condition     = coalesce(docker_container.workspace[0].destroy_grace_seconds, 0) > module.agent.visible_to_viewers.scripts.egoagent_stop.timeout + 5
    error_message = "destroy_grace_seconds must leave the agent time to run its stop scripts: without it the provider SIGKILLs the container at once."
  }
  assert {
    condition     = docker_container.workspace[0].stop_signal == "SIGTERM" && coalesce(docker_container.workspace[0].stop_timeout, 0) >= coalesce(docker_container.workspace[0].destroy_grace_seconds, 0)
    error_message = "A stop by the engine itself must give the same grace (stop_signal SIGTERM, stop_timeout)."
  }
}

run "no_network_is_refused" {
  command = plan
  variables {
    docker_network = "none"
  }
  expect_failures = [var.docker_network]
}
# END shared checks

# The checks only this template needs: its parameters and envbuilder's init
# script (the cached-image probe is checked in cache_repo_docker_config_and_cached_image).
run "token_stays_out_of_parameters_and_init_script" {
  command = apply

  assert {
    condition = !strcontains(jsonencode([
      data.coder_parameter.repo.default, data.coder_parameter.repo.option,
      data.coder_parameter.custom_repo_url.default,
      data.coder_parameter.fallback_image.default,
    ]), "ops_TEST-SENTINEL")
    error_message = "The token must not appear in any coder_parameter."
  }
  assert {
    condition     = !strcontains(nonsensitive(local.agent_env.ENVBUILDER_INIT_SCRIPT), "ops_TEST-SENTINEL")
    error_message = "The token must not appear in ENVBUILDER_INIT_SCRIPT."
  }
}

run "home_and_agent_folder" {
  command = apply

  assert {
    condition     = length(docker_container.workspace[0].volumes) == 1 && one(docker_container.workspace[0].volumes).container_path == "/home/joshsymonds" && one(docker_container.workspace[0].volumes).volume_name == module.home.name
    error_message = "The persistent home volume must be mounted at /home/joshsymonds."
  }
  assert {
    condition     = toset([for l in module.home.labels : l.label]) == toset(["coder.owner", "coder.owner_id", "coder.workspace_id", "coder.workspace_name_at_creation"])
    error_message = "The home volume must carry the coder.* labels used to find orphaned volumes."
  }
  assert {
    condition = { for l in docker_container.workspace[0].labels : l.label => l.value } == {
      "coder.owner"          = "joshsymonds"
      "coder.owner_id"       = "6f1c2b9e-0000-4000-8000-000000000012"
      "coder.workspace_id"   = "6f1c2b9e-0000-4000-8000-000000000011"
      "coder.workspace_name" = "Dotfiles"
    }
    error_message = "The container must carry exactly the coder.* labels naming its owner and workspace."
  }
  assert {
    condition     = module.agent.visible_to_viewers.agent_dir == "/home/joshsymonds" && module.ides.folder == "/home/joshsymonds"
    error_message = "The agent folder and the IDEs' folder must be /home/joshsymonds."
  }
  assert {
    condition     = one(docker_container.workspace[0].host).host == "host.docker.internal" && one(docker_container.workspace[0].host).ip == "host-gateway"
    error_message = "host.docker.internal must map to the host gateway."
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

run "fallback_image_is_the_pinned_egoengine_image" {
  command = apply

  assert {
    condition     = data.coder_parameter.fallback_image.default == "ghcr.io/veraticus/nix-config/egoengine:abc1234"
    error_message = "fallback_image must default to the egoengine image at image_tag."
  }
}

run "latest_is_refused" {
  command = plan
  variables {
    image_tag = "latest"
  }
  expect_failures = [var.image_tag]
}

run "docker_config_path_is_refused" {
  command = plan
  variables {
    cache_repo               = "ghcr.io/veraticus/egoengine-cache"
    cache_repo_docker_config = "/home/joshsymonds/.docker/config.json"
  }
  expect_failures = [var.cache_repo_docker_config]
}

run "custom_repository_needs_a_url" {
  command = plan
  override_data {
    target = data.coder_parameter.custom_repo_url
    values = {
      value = ""
    }
  }
  expect_failures = [docker_container.workspace]
}

# The engine restarts a container only when it runs the cached image: a
# container that built the devcontainer in place would come back without the
# devcontainer's environment (main.tf says why).
run "engine_restart_brings_a_cached_workspace_back" {
  command = apply
  variables {
    cache_repo = "ghcr.io/veraticus/egoengine-cache"
  }

  assert {
    condition     = docker_container.workspace[0].restart == "unless-stopped"
    error_message = "A container of the cached image must come back after an engine restart (restart = \"unless-stopped\")."
  }
}

run "engine_restart_leaves_a_builder_container_stopped" {
  command = apply
  variables {
    cache_repo = "ghcr.io/veraticus/egoengine-cache"
  }
  override_resource {
    target = envbuilder_cached_image.cached
    values = {
      exists = false
      image  = "ghcr.io/coder/envbuilder:1.3.0"
    }
  }

  assert {
    condition     = docker_container.workspace[0].image == "ghcr.io/coder/envbuilder:1.3.0" && docker_container.workspace[0].restart == "no"
    error_message = "A container that builds the devcontainer must not be restarted by the engine (restart = \"no\"): it would come back without the devcontainer's environment."
  }
}

run "engine_restart_without_a_cache_leaves_it_stopped" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].restart == "no"
    error_message = "Without a cache every container builds in place: restart must be \"no\"."
  }
}

run "joins_the_docker_network_variable" {
  command = apply
  variables {
    docker_network = "egoengine_default"
  }

  assert {
    condition     = docker_container.workspace[0].network_mode == "egoengine_default"
    error_message = "The container must join the network named by docker_network."
  }
}

run "default_network_is_the_bridge" {
  command = plan

  assert {
    condition     = docker_container.workspace[0].network_mode == "bridge"
    error_message = "docker_network defaults to the engine's bridge."
  }
}
