# egoagent, built from this repository with buildGoModule. Its whole test
# suite runs in the build (checkPhase): there is no network and no npm in the
# sandbox, so tests that need the real Codex CLI skip, saying so, because
# EGOAGENT_TEST_CODEX is not set here.
{
  lib,
  buildGoModule,
  go,
  rev,
}: let
  root = ../..;
  # Only what the Go build reads, so that editing docs or Nix does not
  # rebuild egoagent. scripts/vendor-hash.sh vendors from the same files;
  # test-nix fails if Go code appears outside cmd/, internal/ and bench/.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/go.mod")
      (root + "/go.sum")
      (root + "/cmd")
      (root + "/internal")
      (root + "/bench")
    ];
  };
  goLine = (import ../lib/gomod.nix).goVersion (builtins.readFile (root + "/go.mod"));
  pinnedGo = (import ../pins.nix).goVersion;
in
  # buildGoModule runs with GOTOOLCHAIN=local: a go line above nixpkgs' Go
  # cannot build, so say which number to change instead of failing later.
  assert lib.assertMsg (lib.versionAtLeast go.version goLine)
  "go.mod asks for Go ${goLine}, but the pinned nixpkgs has Go ${go.version}: lower go.mod's go line or update nixpkgs";
  assert lib.assertMsg (lib.versionAtLeast go.version pinnedGo)
  "nix/pins.nix says the pinned nixpkgs has Go ${pinnedGo}, but it has ${go.version}: correct nix/pins.nix";
    buildGoModule {
      pname = "egoagent";
      version = rev;
      inherit src;

      # The NAR hash of `go mod vendor`; scripts/vendor-hash.sh rewrites it.
      vendorHash = import ./vendor-hash.nix;

      # egoagent and its 1Password helper, installed side by side.
      subPackages = ["cmd/egoagent" "cmd/egoagent-op"];
      env.CGO_ENABLED = "0";
      ldflags = ["-s" "-w" "-X main.version=${rev}"];
      # As scripts/build.sh: no man-page generator from urfave/cli.
      tags = ["urfave_cli_no_docs"];

      # subPackages would limit the tests to cmd/egoagent: run them all.
      checkPhase = ''
        runHook preCheck
        export HOME="$TMPDIR/home"
        mkdir -p "$HOME"
        # The renewal tests wait out real leases: past go test's 10 minutes
        # per package on a slow builder.
        go test -count=1 -timeout 30m ./...
        runHook postCheck
      '';

      meta = {
        description = "Brings a workspace's secrets from 1Password into files and keeps them fresh";
        homepage = "https://github.com/veraticus/egoengine";
        mainProgram = "egoagent";
        platforms = lib.platforms.linux;
      };
    }
