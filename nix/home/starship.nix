# The prompt.
{...}: {
  programs.starship = {
    enable = true;
    enableZshIntegration = true;
    settings = {
      add_newline = false;
      format = "$username$hostname$directory$git_branch$git_status$nix_shell$golang$cmd_duration$line_break$character";
      hostname = {
        ssh_only = false;
        format = "[$hostname]($style) ";
      };
      directory.truncation_length = 4;
      cmd_duration.min_time = 2000;
      nix_shell.format = "[$symbol$state]($style) ";
    };
  };
}
