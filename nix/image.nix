# egoengine-dev-base-oci: the workspace image Coder starts, with joshsymonds'
# Home Manager environment and egoagent inside.
#
# What it promises (egoagent image verify checks each, inside the container):
# joshsymonds 1000:1000 in /etc/passwd and /etc/group, /home/joshsymonds
# owned by him, zsh as login shell and command, /tmp 1777, /usr/bin/env,
# /bin/sh, CA certificates, curl (the Coder agent downloads itself with it),
# a UTF-8 locale, PATH through the Home Manager profile, the tools, and
# egoagent's configuration at /etc/egoagent/config.toml.
{
  lib,
  dockerTools,
  buildEnv,
  runCommand,
  glibcLocales,
  bashInteractive,
  coreutils,
  curl,
  findutils,
  gawk,
  gnugrep,
  gnused,
  gnutar,
  gzip,
  less,
  procps,
  which,
  zsh,
  egoagent,
  egoagentConfig,
  home,
  rev,
  fullRev,
  imageName ? "ghcr.io/veraticus/nix-config/egoengine",
  source ? "https://github.com/veraticus/egoengine",
}: let
  user = "joshsymonds";
  uid = 1000;
  gid = 1000;
  homeDir = "/home/${user}";

  homeFiles = home.config.home-files;
  homePath = home.config.home.path;

  locales = glibcLocales.override {
    allLocales = false;
    locales = ["en_US.UTF-8/UTF-8"];
  };

  # Tools every process in the container may need whatever state the home
  # volume is in (Coder's agent bootstrap, scripts, egoagent itself); they
  # land in /bin. The user's own tools come from the Home Manager profile.
  system = buildEnv {
    name = "egoengine-system";
    paths = [bashInteractive coreutils curl findutils gawk gnugrep gnused gnutar gzip less procps which zsh egoagent];
    pathsToLink = ["/bin"];
  };

  nss = dockerTools.fakeNss.override {
    extraPasswdLines = ["${user}:x:${toString uid}:${toString gid}:Josh Symonds:${homeDir}:/bin/zsh"];
    extraGroupLines = ["${user}:x:${toString gid}:"];
  };

  # /etc files of our own, and where the image records its Home Manager
  # generation for `egoagent image link-home`.
  etc = runCommand "egoengine-etc" {} ''
    mkdir -p $out/etc/egoagent $out/etc/egoengine
    cp ${egoagentConfig} $out/etc/egoagent/config.toml
    ln -s ${homeFiles} $out/etc/egoengine/home-files
    ln -s ${homePath} $out/etc/egoengine/home-path
    printf '%s\n' /bin/zsh /bin/bash /bin/sh > $out/etc/shells
  '';
in
  dockerTools.buildLayeredImage {
    name = imageName;
    tag = rev;

    contents = [
      system
      nss
      etc
      locales
      dockerTools.usrBinEnv
      dockerTools.caCertificates
    ];

    # Runs under fakeroot in the image's root folder. Home Manager's
    # activation cannot run here (it needs a running Nix), so the home gets
    # the generation's files linked in by egoagent itself, the same code that
    # re-links a persistent home after an upgrade.
    fakeRootCommands = ''
      set -euo pipefail
      mkdir -p ./tmp ./root ./home/${user}
      chmod 1777 ./tmp
      ln -sfn ${bashInteractive}/bin/bash ./bin/sh
      ${lib.getExe egoagent} image link-home \
        --home "$PWD/home/${user}" \
        --home-files ${homeFiles} \
        --home-path ${homePath}
      chown -R -h ${toString uid}:${toString gid} ./home/${user}
      chmod 0700 ./home/${user}
    '';

    config = {
      User = "${toString uid}:${toString gid}";
      WorkingDir = homeDir;
      Cmd = ["/bin/zsh" "-l"];
      Env = [
        "HOME=${homeDir}"
        "USER=${user}"
        "SHELL=/bin/zsh"
        "PATH=${homeDir}/.nix-profile/bin:/bin:/usr/bin"
        "LANG=en_US.UTF-8"
        "LOCALE_ARCHIVE=${locales}/lib/locale/locale-archive"
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        "NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        "EDITOR=nvim"
      ];
      Labels = {
        "org.opencontainers.image.title" = "egoengine";
        "org.opencontainers.image.description" = "egoengine workspace: joshsymonds' Home Manager environment with egoagent";
        "org.opencontainers.image.source" = source;
        "org.opencontainers.image.revision" = fullRev;
      };
    };
  }
