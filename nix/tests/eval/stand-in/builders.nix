# The nixpkgs functions the flake and the Home Manager modules call, as
# stand-ins: each takes the arguments the real one takes and returns a
# derivation (derivation.nix) with those arguments as its inputs, plus the
# attributes callers read from the result (imageName, imageTag, ...).
# What each really does (compile Go, lay out an image, render TOML) is not
# reproduced: only that it is called rightly and its inputs evaluate.
{
  lib,
  standIn,
}: let
  # A builder called as f name attrs text, such as runCommand.
  named = name: inputs: standIn {inherit name inputs;};
  # A builder called with one attrset that carries the name.
  attrs = args:
    standIn {
      name = args.name or "${args.pname}-${args.version}";
      inputs = args;
      extra = {meta = args.meta or {};} // args.passthru or {};
    };
  # pkgs.formats.<format> {}: a type for the settings, and generate, which
  # renders them to a file. The real types say what each format can hold;
  # here every type accepts anything, so a setting the format cannot render
  # is not caught (docs/image.md).
  format = kind: _: {
    type = lib.types.anything;
    lib.types.atom = lib.types.anything;
    generate = name: value: named name {inherit kind value;};
  };
in {
  # As in nixpkgs, env's attributes are the derivation's own (meta among
  # them, which is not an input).
  runCommand = name: env: script: named name (env // {buildCommand = script;});
  runCommandLocal = name: env: script: named name (env // {buildCommand = script;});
  writeTextFile = attrs;
  writeShellScript = name: text: named name {inherit text;};
  buildEnv = attrs;
  linkFarm = name: entries: named name {inherit entries;};
  replaceVars = src: vars: named (baseNameOf src) {inherit src vars;};
  # Home Manager's manual pages are built from every option it declares;
  # their content is not evaluated here, only that the manual is wired in.
  nixosOptionsDoc = args: {
    optionsJSON = named "options.json" {inherit (args) variablelistId;};
    optionsCommonMark = named "options.md" {inherit (args) variablelistId;};
  };
  mkShell = args: attrs ({name = "nix-shell";} // args);

  formats = lib.genAttrs ["toml" "json" "yaml" "ini"] format;

  # buildGoModule: vendorHash must be an SRI hash (or null), as the real
  # one's fixed-output vendor derivation requires.
  buildGoModule = args:
    assert lib.assertMsg (args.vendorHash == null || builtins.match "sha256-[A-Za-z0-9+/]{43}=" args.vendorHash != null)
    "buildGoModule ${args.pname}: vendorHash ${builtins.toJSON args.vendorHash} is not a sha256 SRI hash";
      attrs args;

  dockerTools = {
    # The real one's passthru: imageName as given, imageTag the tag when one
    # is given (otherwise a hash of the image, which the stand-in cannot
    # know).
    buildLayeredImage = args:
      standIn {
        name = "${baseNameOf args.name}.tar.gz";
        inputs = args;
        extra = {
          imageName = args.name;
          imageTag = args.tag or (throw "stand-in dockerTools: buildLayeredImage without a tag has a content-hash tag, unknown here");
        };
      };
    fakeNss = standIn {
      name = "fake-nss";
      extra.override = args: standIn {
        name = "fake-nss";
        inputs = args;
      };
    };
    usrBinEnv = standIn {name = "usr-bin-env";};
    caCertificates = standIn {name = "ca-certificates";};
  };

  # Neovim: Home Manager wraps the unwrapped editor with its plugins and
  # configuration through these. The attributes it reads back (the plugins'
  # runtime dependencies, the Lua the wrapper adds) are empty here.
  neovimUtils = {
    makeVimPackageInfo = plugins: {
      pluginPython3Packages = [];
      runtimeDeps = [];
      vimPackage = named "vim-pack-dir" {inherit plugins;};
    };
    packDir = dirs: named "vim-pack-dir" {inherit dirs;};
  };
  wrapNeovimUnstable = neovim: args:
    standIn {
      name = "neovim";
      inputs = args // {inherit neovim;};
      extra.luaRcContent = "";
    };
}
