"""causalspec.remote_hosts: the allow-list a spec cannot write (env var, user config file),
compared by origin, and the refusal's wording."""

from __future__ import annotations

import pytest

from causalspec.remote_hosts import (ENV_VAR, HostConfigError, config_path, host_policy, origin,
                                     refuse_reason)


@pytest.mark.parametrize("url,expected", [
    ("https://NDIF.My-Lab.org/", "https://ndif.my-lab.org:443"),
    ("https://ndif.my-lab.org:443/api", "https://ndif.my-lab.org:443"),
    ("http://ndif.my-lab.org", "http://ndif.my-lab.org:80"),
    ("ndif.my-lab.org:8443", "https://ndif.my-lab.org:8443"),  # no scheme: https
    # userinfo is not the host: this URL goes to evil.org
    ("https://api.ndif.us@evil.org", "https://evil.org:443"),
])
def test_hosts_are_compared_by_origin(url, expected):
    assert origin(url) == expected


@pytest.mark.parametrize("url", ["ftp://host", "https://", "https://host:99999"])
def test_what_is_not_an_http_host_is_refused(url):
    with pytest.raises(HostConfigError):
        origin(url)


def test_the_config_file_follows_xdg():
    assert config_path({"XDG_CONFIG_HOME": "/cfg"}).as_posix() == "/cfg/causalspec/config.toml"
    # a relative XDG_CONFIG_HOME is ignored, as the XDG spec says
    assert config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}).as_posix().endswith("/.config/causalspec/config.toml")


def test_only_ndif_is_allowed_by_default(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    policy = host_policy(env)
    assert policy.allows("https://api.ndif.us") and not policy.allows("https://ndif.my-lab.org")
    assert refuse_reason("https://api.ndif.us/", "network `n`", env) is None


def test_every_source_of_the_allow_list(tmp_path):
    (tmp_path / "causalspec").mkdir()
    (tmp_path / "causalspec" / "config.toml").write_text('[remote]\nallowed_hosts = ["https://c.example.org"]\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path), ENV_VAR: "https://a.example.org, b.example.org",
           "NDIF_HOST": "https://ndif.my-lab.org"}
    policy = host_policy(env)
    for host in ("https://a.example.org/x", "https://b.example.org", "https://c.example.org",
                 "https://ndif.my-lab.org"):
        assert policy.allows(host), host
    assert not policy.allows("http://b.example.org") and not policy.allows("https://d.example.org")
    assert policy.origins[origin("https://c.example.org")] == str(tmp_path / "causalspec" / "config.toml")


@pytest.mark.parametrize("text", ["[remote\n", '[remote]\nallowed_hosts = [1]\n', '[remote]\nallowed_hosts = ["ftp://x"]\n'])
def test_a_bad_config_file_is_named(tmp_path, text):
    (tmp_path / "causalspec").mkdir()
    (tmp_path / "causalspec" / "config.toml").write_text(text)
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(HostConfigError, match="config.toml"):
        host_policy(env)
    reason = refuse_reason("https://x.example.org", "network `n`", env)
    assert "config.toml" in reason and "cannot be read" in reason


def test_the_refusal_says_how_to_allow_the_host(tmp_path):
    reason = refuse_reason("https://x.example.org", "network `n` (s.cspec:9:26)", {"XDG_CONFIG_HOME": str(tmp_path)})
    assert "network `n` (s.cspec:9:26)" in reason and "API key" in reason
    assert "--remote https://x.example.org" in reason and f"{ENV_VAR}=https://x.example.org" in reason
    assert str(tmp_path / "causalspec" / "config.toml") in reason
