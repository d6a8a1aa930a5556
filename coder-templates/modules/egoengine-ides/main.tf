# The IDEs of an egoengine workspace, from Coder's module registry, both
# opening the workspace user's home. Kept apart from egoengine-agent because
# these need registry.coder.com at `terraform init`; the agent module needs
# nothing but the coder provider, so it also runs where the registry does not.
#
# Keep each `source` and `version` on its own line, as below:
# scripts/test-templates.sh swaps these two sources for local stand-ins
# (registry.coder.com is not reachable where the tests run).

variable "agent_id" {
  type        = string
  description = "ID of the coder_agent the IDE apps attach to."
}

variable "folder" {
  type        = string
  description = "Folder both IDEs open."
  default     = "/home/joshsymonds"
}

variable "start_count" {
  type        = number
  description = "data.coder_workspace.me.start_count: the apps exist only while the workspace runs."
}

# https://registry.coder.com/modules/coder/code-server
module "code-server" {
  count    = var.start_count
  source   = "registry.coder.com/coder/code-server/coder"
  version  = "~> 1.0"
  agent_id = var.agent_id
  folder   = var.folder
  order    = 1
}

# https://registry.coder.com/modules/coder/jetbrains
module "jetbrains" {
  count    = var.start_count
  source   = "registry.coder.com/coder/jetbrains/coder"
  version  = "~> 1.1"
  agent_id = var.agent_id
  folder   = var.folder
}

output "folder" {
  description = "Folder both IDEs open."
  value       = var.folder
}
