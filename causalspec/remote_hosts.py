"""Which remote hosts the user allows: a spec alone never chooses where credentials go.

Why this exists: a remote check sends the user's NDIF API key to the host it runs on, and
nnsight loads that host's reply with pickle (`torch.load(weights_only=False)`), which can
run code. A spec is text anyone can hand you, so a host written in a spec
(`backend nnsight remote "https://HOST"`) is used only when the user allowed that host
through something the spec cannot write:

* the command line: `causalspec check … --remote https://HOST` (that host is used, the
  spec's host is ignored);
* the environment variable ``CAUSALSPEC_REMOTE_HOSTS``: a comma-separated allow-list;
* the user config file ``$XDG_CONFIG_HOME/causalspec/config.toml`` (default
  ``~/.config/causalspec/config.toml``)::

      [remote]
      allowed_hosts = ["https://ndif.my-lab.org"]

NDIF's own host (``https://api.ndif.us``, or the one ``NDIF_HOST`` names) is always allowed:
the user's key is NDIF's key. Hosts are compared by *origin*: scheme, host name and port
(a path is ignored; ``https://lab.org`` does not allow ``http://lab.org``). An allow-list
entry written without a scheme (``lab.org``, ``lab.org:8443``) means https.

This module reads only the user's environment and files; it contacts nothing.
"""

from __future__ import annotations

from causalspec.errors import UsageError

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

ENV_VAR = "CAUSALSPEC_REMOTE_HOSTS"
NDIF_DEFAULT_HOST = "https://api.ndif.us"
CONFIG_SECTION, CONFIG_KEY = "remote", "allowed_hosts"
DEFAULT_PORTS = {"https": 443, "http": 80}


class HostConfigError(UsageError, ValueError):
    """The user's allow-list cannot be read (a malformed config file or entry): the remote
    check is refused, naming the file or variable to fix."""


@dataclass(frozen=True)
class HostPolicy:
    """The allowed origins and where each came from (for messages)."""

    origins: dict[str, str]  # origin -> "NDIF", "$CAUSALSPEC_REMOTE_HOSTS" or the config file path
    config_file: Path

    def allows(self, url: str) -> bool:
        try:
            return origin(url) in self.origins
        except HostConfigError:
            return False


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased, with the scheme's default port filled in.
    The host is what ``urlsplit`` calls ``hostname``: ``https://api.ndif.us@evil.org`` is
    evil.org, never api.ndif.us."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise HostConfigError(f"`{url}` is not a host URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise HostConfigError(f"`{url}` is not an http(s) host (write e.g. `https://ndif.my-lab.org`)")
    return f"{scheme}://{parts.hostname.lower()}:{port or DEFAULT_PORTS[scheme]}"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user config file: ``$XDG_CONFIG_HOME/causalspec/config.toml``, else under ``~/.config``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path(os.path.expanduser("~")) / ".config"
    return root / "causalspec" / "config.toml"


def _toml_load(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - python 3.10
        import tomli as tomllib
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _config_hosts(path: Path) -> list[str]:
    if not path.is_file():
        return []
    try:
        data = _toml_load(path)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise HostConfigError(f"cannot read {path}: {exc}") from exc
    section = data.get(CONFIG_SECTION, {})
    hosts = section.get(CONFIG_KEY, []) if isinstance(section, dict) else None
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise HostConfigError(f"{path}: `[{CONFIG_SECTION}] {CONFIG_KEY}` must be a list of host URLs, "
                              f'e.g. {CONFIG_KEY} = ["https://ndif.my-lab.org"]')
    return hosts


def host_policy(environ: Mapping[str, str] | None = None) -> HostPolicy:
    """The hosts this user allows, read now from the environment and the config file.
    Raises `HostConfigError` when an entry or the file is malformed."""
    env = os.environ if environ is None else environ
    origins: dict[str, str] = {origin(NDIF_DEFAULT_HOST): "NDIF"}
    if env.get("NDIF_HOST"):  # nnsight's own setting for the NDIF host: the user's
        origins.setdefault(origin(env["NDIF_HOST"]), "NDIF_HOST")
    for entry in (env.get(ENV_VAR) or "").split(","):
        if entry.strip():
            try:
                origins.setdefault(origin(entry), f"${ENV_VAR}")
            except HostConfigError as exc:
                raise HostConfigError(f"${ENV_VAR}: {exc}") from exc
    path = config_path(env)
    for entry in _config_hosts(path):
        try:
            origins.setdefault(origin(entry), str(path))
        except HostConfigError as exc:
            raise HostConfigError(f"{path}: {exc}") from exc
    return HostPolicy(origins, path)


def how_to_allow(host: str, environ: Mapping[str, str] | None = None) -> str:
    """The three ways to allow `host`, for a refusal message."""
    return (f"if you trust it, name it on the command line (`causalspec check … --remote {host}`), or allow it "
            f"with `export {ENV_VAR}={host}` (comma-separated), or in {config_path(environ)}: "
            f'`[{CONFIG_SECTION}] {CONFIG_KEY} = ["{host}"]`')


def refuse_reason(host: str, where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """None when the user allows `host`; else the refusal: why, and how to allow it.
    ``where``: what names the host, e.g. "network `gpt2` (spec.cspec:7:28)"."""
    try:
        policy = host_policy(environ)
    except HostConfigError as exc:
        return (f"{where} asks to run on `{host}`, and the allowed hosts cannot be read: {exc}; "
                "fix that, then " + how_to_allow(host, environ))
    if policy.allows(host):
        return None
    return (f"{where} asks to run on the remote host `{host}`, which you have not allowed: a host named only by "
            "a spec is never contacted (your NDIF API key would be sent there and its replies loaded with "
            "pickle); " + how_to_allow(host, environ))


__all__ = ["ENV_VAR", "HostConfigError", "HostPolicy", "NDIF_DEFAULT_HOST", "config_path", "host_policy",
           "how_to_allow", "origin", "refuse_reason"]
