"""The peers, installed on demand under bench/.peers/ (gitignored), and how to start them.

LiteLLM's proxy comes from PyPI into its own venv; Portkey's gateway from npm. A peer that
cannot be installed or started here is reported as such in the table, never a crash.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.interpreter import base_of
from bench.procs import GATEWAY_CORE, Proc, base_env, start

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
# 1.107.0 is never to be used. Newer 1.108/1.109 releases need packages (certifi 2026.10.19,
# litellm-proxy-extras 0.4.113, litellm-enterprise 0.1.79.post2) that the registry reachable
# here does not serve; 1.106.10 is the newest that installs, and matches the figures.
LITELLM_VERSION = "1.106.10"
LITELLM_OVERRIDES = ROOT / "bench" / "litellm-overrides.txt"
# LiteLLM refuses to start without a master key; callers present it as their bearer token.
LITELLM_MASTER_KEY = "sk-bench-" + "0123456789abcdef" * 4
PORTKEY_VERSION = "1.15.2"
PORTKEY_HOST_PLACEHOLDER = "{upstream}/v1"
INSTALL_TIMEOUT = 900.0

_install_errors: dict[str, str] = {}


def _run(argv: list[str], *, cwd: Path | None = None, timeout: float = INSTALL_TIMEOUT
         ) -> str | None:
    """Run an install step; None when it worked, else the end of its output."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]}: {type(exc).__name__}"
    if done.returncode != 0:
        return (done.stdout + done.stderr).strip()[-600:]
    return None


def litellm_dir() -> Path:
    """LiteLLM's own venv."""
    return PEERS / "litellm"


def ensure_litellm() -> str | None:
    """Install LiteLLM's proxy (pinned) into its venv once; a reason string if that fails."""
    venv = litellm_dir()
    stamp = venv / f".installed-{LITELLM_VERSION}"
    python = venv / "bin" / "python"
    if python.exists() and base_of(str(python)) != base_of(sys.executable):
        shutil.rmtree(venv)  # made from another interpreter than the bench's: made again
    if stamp.exists():
        return None
    uv = Path(sys.executable).with_name("uv")
    error = None
    if not python.exists():
        error = _run([sys.executable, "-m", "venv", str(venv)])
    if error is None:
        # uv, for its --override: LiteLLM pins certifi to a release the registry lacks here.
        error = _run([str(uv), "pip", "install", "--quiet", "--python", str(python),
                      f"litellm[proxy]=={LITELLM_VERSION}", "--override",
                      str(LITELLM_OVERRIDES)])
    if error is None:
        stamp.touch()
    else:
        _install_errors["litellm"] = f"install failed: {error}"
    return error


def litellm_unavailable() -> str | None:
    """Why LiteLLM cannot run here, or None."""
    if "litellm" in _install_errors:
        return _install_errors["litellm"]
    if not (litellm_dir() / f".installed-{LITELLM_VERSION}").exists():
        return "not installed"
    return None


def launch_litellm(upstream: str, port: int, log_dir: Path, extra: Mapping[str, str]) -> Proc:
    """`litellm --config`, one uvicorn worker, one model routed to the mock as OpenAI."""
    config = log_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench-model\n"
        "    litellm_params:\n"
        "      model: openai/bench-model\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  telemetry: false\n")
    env = base_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                    "LITELLM_TELEMETRY": "False",
                    "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY, **extra})
    argv = [str(litellm_dir() / "bin" / "litellm"), "--config", str(config), "--host",
            "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return start("litellm", argv, core=GATEWAY_CORE, env=env, log_dir=log_dir)


def portkey_dir() -> Path:
    """Portkey's npm prefix."""
    return PEERS / "portkey"


def _portkey_entry() -> Path:
    return portkey_dir() / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def ensure_portkey() -> str | None:
    """Install Portkey's gateway (pinned) from npm once; a reason string if that fails."""
    stamp = portkey_dir() / f".installed-{PORTKEY_VERSION}"
    if stamp.exists() and _portkey_entry().exists():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _install_errors["portkey"] = "node/npm not found"
        return _install_errors["portkey"]
    portkey_dir().mkdir(parents=True, exist_ok=True)
    package = portkey_dir() / "package.json"
    if not package.exists():
        package.write_text('{"private": true}\n')
    error = _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                  f"@portkey-ai/gateway@{PORTKEY_VERSION}"], cwd=portkey_dir())
    if error is None:
        stamp.touch()
    else:
        _install_errors["portkey"] = f"install failed: {error}"
    return error


def portkey_unavailable() -> str | None:
    """Why Portkey cannot run here, or None."""
    if "portkey" in _install_errors:
        return _install_errors["portkey"]
    if not _portkey_entry().exists():
        return "not installed"
    return None


def launch_portkey(upstream: str, port: int, log_dir: Path, extra: Mapping[str, str]) -> Proc:
    """Portkey's Node server, headless; the upstream is chosen per request by header.

    With bench/portkey_stream_shim.mjs preloaded: without it its streams fail here (see there).
    """
    node = shutil.which("node") or "node"
    shim = ROOT / "bench" / "portkey_stream_shim.mjs"
    argv = [node, "--import", shim.as_uri(), str(_portkey_entry()), f"--port={port}",
            "--headless"]
    return start("portkey", argv, core=GATEWAY_CORE, env=base_env(dict(extra)),
                 log_dir=log_dir, cwd=portkey_dir())


def venv_package_version(python: Path, name: str) -> str:
    """The installed version of distribution `name` in the environment of `python`."""
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def tool_version(argv: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str:
    """The first version-looking string a tool prints about itself."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "?"


def git_revision(root: Path) -> str:
    """The checked-out commit, with `+changes` when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return f"{head}{'+changes' if dirty.strip() else ''}" or "?"
