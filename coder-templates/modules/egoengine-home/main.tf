# The persistent home of an egoengine workspace: one Docker volume per
# workspace, mounted over /home/joshsymonds by whichever container the
# template runs. Both templates use this module, so a workspace keeps the same
# volume name and labels whichever template built it.
#
# It uses the calling template's docker provider configuration.

terraform {
  required_version = ">= 1.6"
  required_providers {
    docker = {
      source  = "kreuzwerker/docker"
      version = "~> 4.6"
    }
  }
}

variable "workspace" {
  type        = object({ id = string, name = string })
  description = "The workspace the home belongs to: data.coder_workspace.me."
}

variable "owner" {
  type        = object({ id = string, name = string })
  description = "The workspace's owner: data.coder_workspace_owner.me."
}

resource "docker_volume" "home" {
  name = "coder-${var.workspace.id}-home"
  # The home outlives every change to the template; only deleting the
  # workspace removes it.
  lifecycle {
    ignore_changes = all
  }
  labels {
    label = "coder.owner"
    value = var.owner.name
  }
  labels {
    label = "coder.owner_id"
    value = var.owner.id
  }
  labels {
    label = "coder.workspace_id"
    value = var.workspace.id
  }
  # Goes stale on rename; still handy when cleaning up orphaned volumes.
  labels {
    label = "coder.workspace_name_at_creation"
    value = var.workspace.name
  }
}

output "name" {
  description = "The volume's name, to mount it: coder-<workspace id>-home."
  value       = docker_volume.home.name
}

output "labels" {
  description = "The volume's labels as the provider holds them (label, value pairs), for tests."
  value       = docker_volume.home.labels
}
