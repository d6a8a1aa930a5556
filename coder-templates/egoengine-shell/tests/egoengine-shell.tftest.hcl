# Plan-level checks of egoengine-shell: providers are mocked (no Docker, no
# Coder server), the code-server and JetBrains modules are local stand-ins
# (scripts/test-templates.sh puts them in place). Run with `make test-templates`.

mock_provider "coder" {
  mock_data "coder_workspace" {
    defaults = {
      id          = "6f1c2b9e-0000-4000-8000-000000000001"
      name        = "Shell"
      start_count = 1
      access_url  = "http://localhost:3000"
    }
  }
  mock_data "coder_workspace_owner" {
    defaults = {
      id   = "6f1c2b9e-0000-4000-8000-000000000002"
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
      init_script = "#!/bin/sh\ncurl -fsSL http://localhost:3000/bin/coder-linux-amd64 -o /tmp/coder || wget -q http://127.0.0.1:3000/bin/coder-linux-amd64\nexec /tmp/coder agent\n"
      token       = "mock-agent-token"
    }
  }
}

mock_provider "docker" {}

variables {
  image_tag                = "abc1234"
  op_service_account_token = "ops_TEST-SENTINEL-not-a-real-token"
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

run "engine_restart_brings_the_workspace_back" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].restart == "unless-stopped"
    error_message = "The container must come back after an engine restart (restart = \"unless-stopped\")."
  }
}

# The checks only this template needs: its entrypoint is the agent's script.
run "token_stays_out_of_the_entrypoint" {
  command = apply

  assert {
    condition     = !strcontains(jsonencode(docker_container.workspace[0].entrypoint), "ops_TEST-SENTINEL")
    error_message = "The token must not appear in the container's entrypoint."
  }
}

run "home_user_and_agent_folder" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].user == "joshsymonds"
    error_message = "The container must run as joshsymonds."
  }
  assert {
    condition     = length(docker_container.workspace[0].volumes) == 1 && one(docker_container.workspace[0].volumes).container_path == "/home/joshsymonds"
    error_message = "The persistent volume must be mounted at /home/joshsymonds."
  }
  assert {
    condition     = one(docker_container.workspace[0].volumes).volume_name == module.home.name && !one(docker_container.workspace[0].volumes).read_only
    error_message = "The home mount must be the workspace's docker_volume, writable."
  }
  assert {
    condition     = toset([for l in module.home.labels : l.label]) == toset(["coder.owner", "coder.owner_id", "coder.workspace_id", "coder.workspace_name_at_creation"])
    error_message = "The home volume must carry the coder.* labels used to find orphaned volumes."
  }
  assert {
    condition = { for l in docker_container.workspace[0].labels : l.label => l.value } == {
      "coder.owner"          = "joshsymonds"
      "coder.owner_id"       = "6f1c2b9e-0000-4000-8000-000000000002"
      "coder.workspace_id"   = "6f1c2b9e-0000-4000-8000-000000000001"
      "coder.workspace_name" = "Shell"
    }
    error_message = "The container must carry exactly the coder.* labels naming its owner and workspace."
  }
  assert {
    condition     = module.agent.visible_to_viewers.agent_dir == "/home/joshsymonds"
    error_message = "The agent's folder must be /home/joshsymonds."
  }
  assert {
    condition     = module.ides.folder == "/home/joshsymonds"
    error_message = "code-server and JetBrains must open /home/joshsymonds."
  }
}

run "agent_reaches_coder_through_the_docker_host" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].entrypoint[0] == "sh" && strcontains(docker_container.workspace[0].entrypoint[2], "http://host.docker.internal:3000/bin/coder-linux-amd64")
    error_message = "The entrypoint must run the agent's init script with localhost rewritten to host.docker.internal."
  }
  assert {
    condition     = !strcontains(docker_container.workspace[0].entrypoint[2], "localhost") && !strcontains(docker_container.workspace[0].entrypoint[2], "127.0.0.1")
    error_message = "No localhost or 127.0.0.1 may remain in the init script the container runs."
  }
  assert {
    condition     = one(docker_container.workspace[0].host).host == "host.docker.internal" && one(docker_container.workspace[0].host).ip == "host-gateway"
    error_message = "host.docker.internal must map to the host gateway."
  }
  assert {
    condition     = contains(nonsensitive(docker_container.workspace[0].env), "CODER_AGENT_TOKEN=mock-agent-token")
    error_message = "The agent's token must reach the container as CODER_AGENT_TOKEN."
  }
}

run "egoagent_start_script_and_metadata" {
  command = apply

  assert {
    condition     = module.agent.visible_to_viewers.scripts.egoagent.run_on_start
    error_message = "The egoagent script must run on start."
  }
  assert {
    condition     = can(regex("(?s)\\bstep egoagent image link-home\\b.*\\bstep egoagent start\\b", module.agent.visible_to_viewers.scripts.egoagent.script))
    error_message = "The start script must run `egoagent image link-home`, then `egoagent start`."
  }
  assert {
    condition     = module.agent.visible_to_viewers.scripts.egoagent.start_blocks_login && module.agent.visible_to_viewers.scripts.egoagent.timeout > 0
    error_message = "The start script must hold login until secrets are in place, with a timeout as backstop."
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
  assert {
    condition     = alltrue([for m in module.agent.visible_to_viewers.metadata : m.interval == 30 && m.timeout <= 5 if m.script == "egoagent metadata"])
    error_message = "`egoagent metadata` must refresh every 30 s with a short timeout."
  }
}

run "image_tag_is_pinned" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].image == "ghcr.io/veraticus/nix-config/egoengine:abc1234"
    error_message = "The container must run the egoengine image at the tag given in image_tag."
  }
}

run "latest_is_refused" {
  command = plan
  variables {
    image_tag = "latest"
  }
  expect_failures = [var.image_tag]
}

run "stopped_workspace_keeps_its_home" {
  command = apply
  override_data {
    target = data.coder_workspace.me
    values = {
      start_count = 0
    }
  }

  assert {
    condition     = length(docker_container.workspace) == 0 && module.home.name == "coder-6f1c2b9e-0000-4000-8000-000000000001-home"
    error_message = "A stopped workspace has no container but keeps its home volume."
  }
}

run "a_container_that_cannot_reach_coder_fails_the_build" {
  command = apply

  assert {
    condition     = docker_container.workspace[0].network_mode == "bridge"
    error_message = "The container must join the network named by docker_network (default: the engine's bridge)."
  }
  assert {
    condition     = docker_container.workspace[0].wait && jsonencode(one(docker_container.workspace[0].healthcheck).test) == jsonencode(["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "http://host.docker.internal:3000/healthz"])
    error_message = "The build must wait for a healthcheck that reaches Coder's /healthz from inside the container."
  }
}
