# The Coder agent of an egoengine workspace: where a shell starts, the
# egoagent start script, and the metadata the dashboard shows. Both templates
# use this module; it creates no infrastructure of its own, so whatever runs
# the agent (a Docker container, an envbuilder container, a local process in a
# test) takes `init_script` and `token` from its outputs.
#
# Nothing here ever sees the 1Password service-account token: everything in
# this module (agent env, scripts, metadata) is shown by Coder's API to anyone
# who can view the workspace. The templates pass the token into the
# container's environment only.

terraform {
  required_version = ">= 1.6"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = "~> 2.20"
    }
  }
}

resource "coder_agent" "main" {
  arch = var.arch
  os   = "linux"
  dir  = var.home

  # `coder stat` ships inside the agent binary, so these need nothing from
  # the image. Values are cut at 2 KiB; each of these is one short line.
  metadata {
    key          = "0_cpu"
    display_name = "CPU"
    script       = "coder stat cpu"
    interval     = 10
    timeout      = 1
    order        = 0
  }
  metadata {
    key          = "1_ram"
    display_name = "RAM"
    script       = "coder stat mem"
    interval     = 10
    timeout      = 1
    order        = 1
  }
  metadata {
    key          = "2_home_disk"
    display_name = "Home disk"
    script       = "coder stat disk --path ${var.home}"
    interval     = 60
    timeout      = 1
    order        = 2
  }
  # One line from the daemon's state file: never contacts 1Password, so a
  # short timeout is plenty.
  metadata {
    key          = "3_egoagent"
    display_name = "Secrets"
    script       = "egoagent metadata"
    interval     = var.egoagent_metadata_interval
    timeout      = 5
    order        = 3
  }
}

resource "coder_script" "egoagent" {
  agent_id     = coder_agent.main.id
  display_name = "egoagent"
  icon         = "/emojis/1f511.png"
  script       = file("${path.module}/egoagent-start.sh")
  run_on_start = true
  # Secrets such as ~/.codex/auth.json should be in place before the first
  # shell opens. egoagent start bounds its own run; the timeout is a backstop
  # so a hung start cannot keep the workspace "starting" for ever.
  start_blocks_login = true
  timeout            = var.egoagent_start_timeout
}

# At stop (the agent got SIGTERM: the container is being stopped), egoagent's
# daemon is asked to end with SIGTERM and waited for, so that it finishes or
# cancels its pass, records its state and logs its stop, before the engine
# kills what is left. The template must give the container a stop grace
# longer than this script's timeout.
resource "coder_script" "egoagent_stop" {
  agent_id     = coder_agent.main.id
  display_name = "egoagent stop"
  icon         = "/emojis/1f511.png"
  script       = file("${path.module}/egoagent-stop.sh")
  run_on_stop  = true
  timeout      = 30
}
