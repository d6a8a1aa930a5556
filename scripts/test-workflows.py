#!/usr/bin/python3
"""The properties the GitHub workflows must have before their first run.

Each property is a function of the repository's files that returns the
problems it finds. Run with no argument, this checks the workflows as they
are; then it changes a copy of them in the way each property forbids and
fails unless that property notices, so that no check here passes by
accident. scripts/test-nix.sh runs it.

Needs Debian's python3-yaml (scripts/deps.sh); run with the system Python.
"""

import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The first major of each action that runs on Node 24 (GitHub removed Node
# 20 from its runners), from each action's release notes. An action not
# listed fails the check, so that a new one is looked up before it is used.
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-go": 6,
    "actions/setup-node": 5,
    "actions/cache/restore": 5,
    "actions/cache/save": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    # Composite actions (no Node runtime of their own), at the majors
    # docs/image.md was checked against.
    "cachix/install-nix-action": 31,
    "sigstore/cosign-installer": 4,
}

# The identity cosign records for a signature made by the publish job: the
# workflow file at the ref, with the owner spelled as GitHub spells it.
SIGNER = "https://github.com/Veraticus/egoengine/.github/workflows/image.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"


class Repo:
    """The files the properties read, as text, possibly changed."""

    def __init__(self, files):
        self.files = files

    @classmethod
    def load(cls):
        names = [
            ".github/workflows/image.yml",
            ".github/workflows/test.yml",
            "docs/image.md",
            "nix/pins.nix",
            "go.mod",
        ]
        files = {}
        for n in names:
            with open(os.path.join(ROOT, n), encoding="utf-8") as f:
                files[n] = f.read()
        return cls(files)

    def changed(self, name, old, new):
        if old not in self.files[name]:
            raise SystemExit(f"self-test: {name} has no {old!r} to change")
        files = dict(self.files)
        files[name] = files[name].replace(old, new, 1)
        return Repo(files)

    def workflow(self, name):
        return yaml.safe_load(self.files[f".github/workflows/{name}.yml"])


def step_named(job, prefix):
    for s in job.get("steps", []):
        if s.get("name", "").startswith(prefix):
            return s
    return None


class FakeGHCR:
    """A registry on loopback that answers as GHCR does to the publish job's
    access check: a token from /token, then 202 or 403 to starting an
    upload. curl reaches it in place of ghcr.io through a .curlrc
    (connect-to, and insecure for its self-signed certificate)."""

    def __init__(self, folder, upload_status, token_status=200):
        self.folder = folder
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path, self.headers.get("Authorization", "")))
                if self.path.startswith("/token?") and token_status == 200:
                    self.answer(200, {"token": "registry-token"})
                elif self.path.startswith("/token?"):
                    self.answer(token_status, {"errors": [{"code": "DENIED"}]})
                else:
                    self.answer(404, {"errors": [{"code": "NOT_FOUND"}]})

            def do_POST(self):
                fake.requests.append(("POST", self.path, self.headers.get("Authorization", "")))
                if not self.path.endswith("/blobs/uploads/"):
                    self.answer(404, {"errors": [{"code": "NOT_FOUND"}]})
                elif self.headers.get("Authorization") != "Bearer registry-token":
                    self.answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                elif upload_status == 202:
                    self.answer(202, {}, [("Location", self.path + "upload-1")])
                else:
                    self.answer(upload_status, {"errors": [{"code": "DENIED", "message": "permission_denied: write_package"}]})

            def do_DELETE(self):
                fake.requests.append(("DELETE", self.path, self.headers.get("Authorization", "")))
                self.answer(204, {})

        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ghcr.io",
                        "-keyout", key, "-out", cert, "-days", "1"], check=True, capture_output=True)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        with open(os.path.join(folder, ".curlrc"), "w", encoding="utf-8") as f:
            f.write(f"connect-to = ghcr.io:443:127.0.0.1:{self.server.server_address[1]}\ninsecure\n")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def publish_checks_write_access_first(repo):
    """The publish job's first step asks GHCR to start an upload; on a
    refusal it fails at once, saying who grants what, where; on 202 it goes
    on and ends the upload it opened. Its own shell code, run against a
    registry that answers as GHCR does."""
    wf = repo.workflow("image")
    run = wf["jobs"]["publish"]["steps"][0].get("run", "")
    problems = []
    for upload_status, token_status, ok in [(202, 200, True), (403, 200, False), (202, 403, False)]:
        with tempfile.TemporaryDirectory() as d:
            ghcr = FakeGHCR(d, upload_status, token_status)
            try:
                env = dict(os.environ, CURL_HOME=d, IMAGE=wf["env"]["IMAGE"], GITHUB_ACTOR="someone",
                           GH_TOKEN="github-token", GITHUB_REPOSITORY="Veraticus/egoengine")
                r = subprocess.run(["bash", "-e", "-c", run], cwd=d, env=env, capture_output=True, text=True, timeout=60)
            finally:
                ghcr.close()
        case = f"GHCR answering {token_status} to the token and {upload_status} to the upload"
        if ok and r.returncode != 0:
            problems.append(f"the publish job's first step fails with {case}: {r.stdout}{r.stderr}")
        elif ok and not any(m == "DELETE" for m, _, _ in ghcr.requests):
            problems.append(f"the publish job's first step leaves its upload open with {case}")
        elif not ok:
            if r.returncode == 0:
                problems.append(f"the publish job's first step goes on with {case}")
            for needed in ["::error", "Manage Actions access", "Veraticus/egoengine", "role Write"]:
                if needed not in r.stdout:
                    problems.append(f"with {case}, the publish job's first step does not say {needed!r}")
    return problems


def publish_never_cancelled(repo):
    """No concurrency setting can cancel a publish once it runs."""
    wf = repo.workflow("image")
    problems = []
    top = wf.get("concurrency", {}).get("cancel-in-progress", False)
    if top not in (False, "${{ github.event_name == 'pull_request' }}"):
        problems.append(f"image.yml's concurrency cancel-in-progress is {top!r}: a push to main would cancel a running publish")
    job = wf["jobs"]["publish"].get("concurrency")
    if not isinstance(job, dict) or job.get("cancel-in-progress") is not False:
        problems.append("the publish job needs its own concurrency group with cancel-in-progress: false")
    push_latest = [i for i, s in enumerate(wf["jobs"]["publish"]["steps"]) if ":latest" in s.get("run", "") and "skopeo copy" in s.get("run", "")]
    sign = [i for i, s in enumerate(wf["jobs"]["publish"]["steps"]) if "cosign sign" in s.get("run", "")]
    if not push_latest or not sign or push_latest[0] < sign[0]:
        problems.append("the publish job must move :latest only after signing, so that :latest never names an unsigned image")
    return problems


def version_tuple(v):
    return tuple(int(x) for x in v.split("."))


def go_is_pinned(repo):
    """The test workflow's Go is an exact version, of the pinned nixpkgs'
    minor, and not below go.mod's go line."""
    wf = repo.workflow("test")
    setup = [s for s in wf["jobs"]["test"]["steps"] if s.get("uses", "").startswith("actions/setup-go@")]
    if len(setup) != 1:
        return ["the test workflow must set up Go once with actions/setup-go"]
    v = str(setup[0].get("with", {}).get("go-version", ""))
    m = re.fullmatch(r"\$\{\{\s*env\.(\w+)\s*\}\}", v)
    if m:
        v = str(wf.get("env", {}).get(m.group(1), ""))
    if not re.fullmatch(r"\d+\.\d+\.\d+", v):
        return [f"the test workflow's Go is {v!r}, not an exact version such as 1.26.8"]
    problems = []
    pinned = re.search(r'goVersion\s*=\s*"([0-9.]+)"', repo.files["nix/pins.nix"]).group(1)
    if version_tuple(v)[:2] != version_tuple(pinned)[:2]:
        problems.append(f"the test workflow's Go {v} is not of the pinned nixpkgs' Go {pinned} (nix/pins.nix)")
    line = re.search(r"^go\s+([0-9.]+)", repo.files["go.mod"], re.M).group(1)
    if version_tuple(v) < version_tuple(line):
        problems.append(f"the test workflow's Go {v} is below go.mod's go {line}")
    return problems


def tool_cache_survives(repo):
    """The tool cache is keyed on the pinned versions, restores from older
    keys and is saved whether or not the tests pass."""
    steps = repo.workflow("test")["jobs"]["test"]["steps"]
    restore = [s for s in steps if s.get("uses", "").startswith("actions/cache/restore@")]
    save = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    if any(s.get("uses", "").startswith("actions/cache@") for s in steps):
        return ["actions/cache saves only after a green run: use actions/cache/restore and actions/cache/save"]
    if len(restore) != 1 or len(save) != 1:
        return ["the test workflow needs one actions/cache/restore and one actions/cache/save"]
    r, s = restore[0], save[0]
    problems = []
    key = r.get("with", {}).get("key", "")
    if "hashFiles" in key or "steps.tools.outputs.key" not in key:
        problems.append(f"the cache key {key!r} is not the tool versions' key (steps.tools.outputs.key)")
    versions = step_named({"steps": steps}, "Tool versions")
    if versions is None or "VERSION" not in versions.get("run", ""):
        problems.append("no 'Tool versions' step computes the key from the scripts' pinned versions")
    if not r.get("with", {}).get("restore-keys"):
        problems.append("the cache restore has no restore-keys: a version change would start cold")
    if s.get("with", {}).get("key") != key:
        problems.append("the cache is saved under another key than the one restored")
    cond = str(s.get("if", ""))
    if "!cancelled()" not in cond and "always()" not in cond:
        problems.append(f"the cache save runs only after a green run (if: {cond!r}); use !cancelled()")
    if steps.index(s) < [i for i, x in enumerate(steps) if x.get("run") == "make test"][0]:
        problems.append("the cache is saved before make test has built the tools")
    if versions is not None:
        problems += key_follows_versions(versions["run"], repo.workflow("test").get("env", {}))
    return problems


def key_follows_versions(run, env):
    """The 'Tool versions' step, run on a copy of the scripts: the key stays
    when a script changes elsewhere and moves when a pinned version does."""

    def key(edit):
        with tempfile.TemporaryDirectory() as d:
            for sub in ("scripts", "compose"):
                os.makedirs(os.path.join(d, sub))
            for name in os.listdir(os.path.join(ROOT, "scripts")):
                if name.endswith(".sh"):
                    with open(os.path.join(ROOT, "scripts", name), encoding="utf-8") as f:
                        text = f.read()
                    with open(os.path.join(d, "scripts", name), "w", encoding="utf-8") as f:
                        f.write(edit(name, text))
            with open(os.path.join(ROOT, "compose", "compose.yaml"), encoding="utf-8") as f:
                compose = f.read()
            with open(os.path.join(d, "compose", "compose.yaml"), "w", encoding="utf-8") as f:
                f.write(compose)
            out = os.path.join(d, "out")
            r = subprocess.run(["bash", "-eo", "pipefail", "-c", run], cwd=d, capture_output=True, text=True,
                               env=dict(os.environ, GITHUB_OUTPUT=out, RUNNER_OS="Linux", **{k: str(v) for k, v in env.items()}))
            if r.returncode != 0:
                return None
            with open(out, encoding="utf-8") as f:
                return f.read().strip()

    base = key(lambda n, t: t)
    if base is None:
        return ["the 'Tool versions' step fails on this repository's scripts"]
    problems = []
    if key(lambda n, t: t + "\n# an edit that pins nothing\n" if n == "tools.sh" else t) != base:
        problems.append("the tool cache key changes when a script changes without a version")
    if key(lambda n, t: t.replace("TOFU_VERSION=", "TOFU_VERSION=9", 1) if n == "tools.sh" else t) == base:
        problems.append("the tool cache key does not change with TOFU_VERSION in scripts/tools.sh")
    return problems


def dirty_tree_refused(repo):
    """The tag guard refuses "dirty" and "<sha7>-dirty" and accepts a
    revision: its own shell code, run with the tags the flake can give."""
    step = step_named(repo.workflow("image")["jobs"]["build"], "Image name and tag")
    if step is None:
        return ["image.yml has no 'Image name and tag' step"]
    image = repo.workflow("image")["env"]["IMAGE"]
    problems = []
    for tag, ok in [("0123456", True), ("0123456-dirty", False), ("dirty", False)]:
        with tempfile.TemporaryDirectory() as d:
            # nix eval answers as the flake would for this tree.
            os.makedirs(os.path.join(d, "bin"))
            fake = os.path.join(d, "bin", "nix")
            with open(fake, "w", encoding="utf-8") as f:
                f.write('#!/bin/sh\ncase "$*" in *imageTag*) printf %%s "%s" ;; *imageName*) printf %%s "%s" ;; esac\n' % (tag, image))
            os.chmod(fake, 0o755)
            env = dict(os.environ, PATH=os.path.join(d, "bin") + ":" + os.environ["PATH"], IMAGE=image,
                       GITHUB_OUTPUT=os.path.join(d, "out"))
            r = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True)
            if (r.returncode == 0) != ok:
                problems.append(f"the tag guard {'refuses' if ok else 'accepts'} the tag {tag!r}")
    return problems


def cosign_command_matches_signer(repo):
    """docs/image.md's cosign verify names the identity the publish job
    signs with (whatever the owner's case), and the workflow verifies with
    the very same flags."""
    doc = repo.files["docs/image.md"]
    m = re.search(r"cosign verify [^`]*?--certificate-identity-regexp\s+'([^']+)'\s+--certificate-oidc-issuer\s+([^\s`]+)", doc, re.S)
    if not m:
        return ["docs/image.md has no `cosign verify ... --certificate-identity-regexp '...' --certificate-oidc-issuer ...` command"]
    regexp, issuer = m.group(1), m.group(2)
    problems = []
    if issuer != ISSUER:
        problems.append(f"docs/image.md's issuer {issuer} is not {ISSUER}")
    for signer in [SIGNER, SIGNER.replace("Veraticus", "veraticus")]:
        if not re.search(regexp, signer):
            problems.append(f"docs/image.md's identity regexp {regexp!r} does not match the signer {signer}")
    if re.search(regexp, SIGNER.replace("egoengine/", "egoengine-fork/")):
        problems.append(f"the identity regexp {regexp!r} also matches another repository")
    steps = repo.workflow("image")["jobs"]["publish"]["steps"]
    verify = [s.get("run", "") for s in steps if "cosign verify" in s.get("run", "")]
    if not verify:
        problems.append("the publish job does not verify its signature as docs/image.md tells users to")
    elif f"--certificate-identity-regexp '{regexp}'" not in verify[0] or f"--certificate-oidc-issuer {issuer}" not in verify[0]:
        problems.append("the publish job verifies with other flags than docs/image.md gives")
    return problems


def actions_run_on_node24(repo):
    """Every action is at or above its first Node 24 major."""
    problems = []
    for name in ("image", "test"):
        for job in repo.workflow(name)["jobs"].values():
            for s in job.get("steps", []):
                uses = s.get("uses")
                if not uses:
                    continue
                action, _, ref = uses.partition("@")
                m = re.match(r"v(\d+)", ref)
                if action not in NODE24_MAJORS:
                    problems.append(f"{name}.yml uses {uses}, which scripts/test-workflows.py does not know: look up its runtime and add it")
                elif not m or int(m.group(1)) < NODE24_MAJORS[action]:
                    problems.append(f"{name}.yml uses {uses}: it runs on a Node GitHub removed; use v{NODE24_MAJORS[action]} or later")
    return problems


def skipped_evaluation_happens_elsewhere(repo):
    """When the test workflow skips make test-nix's offline evaluation, the
    image workflow evaluates the flake against the real nixpkgs."""
    wf = repo.workflow("test")
    if not wf.get("env", {}).get("EGOENGINE_SKIP_NIX_EVAL"):
        return []
    runs = [s.get("run", "") for s in repo.workflow("image")["jobs"]["build"]["steps"]]
    if not any(r.strip().startswith("nix flake check") for r in runs):
        return ["test.yml skips the flake evaluation, but image.yml's build job does not run nix flake check"]
    return []


PROPERTIES = [
    publish_checks_write_access_first,
    publish_never_cancelled,
    go_is_pinned,
    tool_cache_survives,
    dirty_tree_refused,
    cosign_command_matches_signer,
    actions_run_on_node24,
    skipped_evaluation_happens_elsewhere,
]

# For each property, a change that breaks it: the property must notice.
BREAKS = [
    (publish_checks_write_access_first, ".github/workflows/image.yml", "blobs/uploads/", "tags/list"),
    (publish_checks_write_access_first, ".github/workflows/image.yml", "exit 1\n          fi\n          # Nothing", "fi\n          # Nothing"),
    (publish_never_cancelled, ".github/workflows/image.yml", "cancel-in-progress: ${{ github.event_name == 'pull_request' }}", "cancel-in-progress: true"),
    (publish_never_cancelled, ".github/workflows/image.yml", "      cancel-in-progress: false", "      cancel-in-progress: true"),
    (go_is_pinned, ".github/workflows/test.yml", 'GO_VERSION: "1.26.8"', "GO_VERSION: stable"),
    (tool_cache_survives, ".github/workflows/test.yml", "if: ${{ !cancelled() && steps.cache.outputs.cache-hit != 'true' }}", "if: ${{ success() }}"),
    (tool_cache_survives, ".github/workflows/test.yml", "          restore-keys: |\n            egoengine-tools-${{ runner.os }}-\n", ""),
    (tool_cache_survives, ".github/workflows/test.yml", "grep -hE '^[A-Za-z_]*(VERSION|version)=[v0-9]' scripts/*.sh", "cat scripts/*.sh"),
    (dirty_tree_refused, ".github/workflows/image.yml", "$tag == dirty || $tag == *-dirty", "$tag == dirty"),
    (cosign_command_matches_signer, "docs/image.md", "'(?i)^https://", "'^https://"),
    (actions_run_on_node24, ".github/workflows/test.yml", "actions/checkout@v5", "actions/checkout@v4"),
    (skipped_evaluation_happens_elsewhere, ".github/workflows/image.yml", "run: nix flake check --no-build", "run: nix build --dry-run .#egoengine-dev-base-oci"),
]


def main():
    repo = Repo.load()
    failed = False
    for prop in PROPERTIES:
        problems = prop(repo)
        if problems:
            failed = True
            print(f"FAIL {prop.__name__}")
            for p in problems:
                print(f"     {p}")
        else:
            print(f"ok   {prop.__name__}")
    for prop, name, old, new in BREAKS:
        if not prop(repo.changed(name, old, new)):
            failed = True
            print(f"FAIL self-test: {prop.__name__} passes with {old!r} changed to {new!r} in {name}")
    if failed:
        return 1
    print(f"{len(PROPERTIES)} properties hold, and each fails when its file is broken ({len(BREAKS)} breaks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
