output "agent_id" {
  description = "ID of the coder_agent, for apps and modules that attach to it."
  value       = coder_agent.main.id
}

output "agent_name" {
  description = "Name Coder gives the agent (its resource name)."
  value       = "main"
}

output "init_script" {
  description = "Script that downloads and starts the agent. Docker templates rewrite localhost in it to host.docker.internal."
  value       = coder_agent.main.init_script
}

output "token" {
  description = "The agent's token: give it to the agent process as CODER_AGENT_TOKEN."
  value       = coder_agent.main.token
  sensitive   = true
}

output "home" {
  description = "The workspace user's home, as given."
  value       = var.home
}

# Everything of this module that Coder's API returns to anyone who can view
# the workspace, in one value, so the templates' tests can check that nothing
# sensitive flows into it (and search it for the token's text as well).
output "visible_to_viewers" {
  description = "The agent's env and folder, its metadata items and its scripts, as Coder's API shows them."
  value = {
    agent_env = coder_agent.main.env
    agent_dir = coder_agent.main.dir
    metadata = [for m in coder_agent.main.metadata : {
      key      = m.key
      script   = m.script
      interval = m.interval
      timeout  = m.timeout
    }]
    scripts = {
      egoagent = {
        script             = coder_script.egoagent.script
        run_on_start       = coder_script.egoagent.run_on_start
        start_blocks_login = coder_script.egoagent.start_blocks_login
        timeout            = coder_script.egoagent.timeout
      }
      egoagent_stop = {
        script      = coder_script.egoagent_stop.script
        run_on_stop = coder_script.egoagent_stop.run_on_stop
        timeout     = coder_script.egoagent_stop.timeout
      }
    }
  }
}
