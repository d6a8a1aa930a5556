variable "arch" {
  type        = string
  description = "CPU architecture of the machine that runs the agent, usually data.coder_provisioner.me.arch."
}

variable "home" {
  type        = string
  description = "The workspace user's home: where shells start, and the disk the metadata reports on."
  default     = "/home/joshsymonds"

  validation {
    condition     = startswith(var.home, "/")
    error_message = "home must be an absolute path, such as /home/joshsymonds."
  }
}

variable "egoagent_start_timeout" {
  type        = number
  description = "Seconds the egoagent start script may run before Coder stops it and marks the start as timed out."
  default     = 300

  validation {
    condition     = var.egoagent_start_timeout >= 30
    error_message = "egoagent_start_timeout must be at least 30 seconds: egoagent start fetches every secret once before it returns."
  }
}

variable "egoagent_metadata_interval" {
  type        = number
  description = "Seconds between refreshes of the `egoagent metadata` line in the dashboard."
  default     = 30
}
