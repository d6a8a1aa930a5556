# What every egoengine workspace container is given, whichever way the
# template runs it: the workspace user and home, the container's name and
# coder.* labels, how it reaches Coder, and the 1Password token's one way in.
# Both templates use it, so these cannot drift apart between them.
#
# It creates nothing: its outputs are values for the template's own
# docker_container.

terraform {
  required_version = ">= 1.6"
}

variable "workspace" {
  type        = object({ id = string, name = string, access_url = string })
  description = "The workspace: data.coder_workspace.me."
}

variable "owner" {
  type        = object({ id = string, name = string })
  description = "The workspace's owner: data.coder_workspace_owner.me."
}

variable "agent_init_script" {
  type        = string
  description = "The agent's init script: module.agent.init_script."
}

variable "op_service_account_token" {
  type        = string
  description = "The template's op_service_account_token. It leaves this module only in secret_env."
  sensitive   = true
  default     = ""
}

locals {
  user = "joshsymonds"
  # A Coder reached at localhost is the Docker host, not the container.
  docker_host = "host.docker.internal"
  localhost   = "/localhost|127\\.0\\.0\\.1/"
}

output "user" {
  description = "The workspace user, joshsymonds."
  value       = local.user
}

output "home" {
  description = "The user's home, where the home volume is mounted: /home/joshsymonds."
  value       = "/home/${local.user}"
}

output "name" {
  description = "The container's name: coder-<owner>-<workspace, lower case>."
  value       = "coder-${var.owner.name}-${lower(var.workspace.name)}"
}

output "labels" {
  description = "Coder's labels on the container, to trace it back to its workspace."
  value = {
    "coder.owner"          = var.owner.name
    "coder.owner_id"       = var.owner.id
    "coder.workspace_id"   = var.workspace.id
    "coder.workspace_name" = var.workspace.name
  }
}

output "coder_url" {
  description = "Coder's access URL as the container reaches it (localhost rewritten to host.docker.internal)."
  value       = replace(var.workspace.access_url, local.localhost, local.docker_host)
}

output "init_script" {
  description = "The agent's init script as the container must run it (localhost rewritten to host.docker.internal)."
  value       = replace(var.agent_init_script, local.localhost, local.docker_host)
}

output "docker_host" {
  description = "The name the container reaches the Docker host by; the template maps it to host-gateway."
  value       = local.docker_host
}

output "secret_env" {
  description = "The container's only 1Password entry: OP_SERVICE_ACCOUNT_TOKEN=<token>, or nothing for an empty token (egoagent then reports \"no token\" rather than failing on an empty one)."
  value       = var.op_service_account_token == "" ? [] : ["OP_SERVICE_ACCOUNT_TOKEN=${var.op_service_account_token}"]
  sensitive   = true
}
