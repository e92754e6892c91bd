"""The config file: errors name the exact path, `gateway check-config` validates without serving."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.config import ConfigError, parse_config
from gateway.routing.catalog import build_catalog
from gateway.routing.health import HealthRegistry
from tests.harness import ROOT, clean_env, write_config

GOOD = """
server: {host: 127.0.0.1, port: 8080, workers: 1, master_key: env:GW_KEY}
providers:
  openai: {api_key: env:OPENAI_KEY}
  local-vllm: {type: openai-compatible, base_url: http://127.0.0.1:8000/v1}
models:
  - name: chat-default
    strategy: {mode: loadbalance}
    targets:
      - {provider: openai, model: gpt-4o-mini, weight: 3}
      - {provider: local-vllm, model: llama-3.1-8b, weight: 1}
"""
ENV = {"GW_KEY": "k", "OPENAI_KEY": "sk-x"}


def test_off_is_a_word_not_a_boolean() -> None:
    """YAML 1.2's booleans: `cache: {mode: off}`, as the README writes it, means the mode "off"
    (YAML 1.1 would read it as false, and the config would be refused)."""
    cfg = parse_config(GOOD + "cache: {mode: off}\n", ENV)
    assert cfg.cache.mode == "off"


def test_good_config_builds() -> None:
    cfg = parse_config(GOOD, ENV)
    assert cfg.server.master_key == "k"
    route = build_catalog(cfg, ENV, HealthRegistry()).resolve("chat-default")
    assert [leaf.target.model for leaf in route.leaves()] == ["gpt-4o-mini", "llama-3.1-8b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("weight: 1}", 'weight: "high"}'),
         'models[0].targets[1].weight: expected a number, got "high"'),
        (GOOD.replace("workers: 1", "workers: 0"), "server.workers: expected `int` >= 1"),
        (GOOD.replace("strategy: {mode: loadbalance}", "strategy: {mode: roundrobin}"),
         "models[0].strategy.mode: "),
        (GOOD.replace("port: 8080", "port: 8080, colour: red"), "server.colour: unknown field"),
        (GOOD.replace("env:OPENAI_KEY", "env:NOT_SET_ANYWHERE"),
         "providers.openai.api_key: environment variable NOT_SET_ANYWHERE is not set"),
        ("models: [", "invalid YAML at line 1"),
        ("- 1", "(top level): expected a mapping"),
        (GOOD + "  - name: chat-default\n    targets: [{provider: openai, model: m}]\n",
         "models[1].name: 'chat-default' is already defined at models[0]"),
        (GOOD + "usage: {enabled: yes}\n", 'usage.enabled: expected true or false, got "yes"'),
    ],
)  # fmt: skip
def test_errors_name_path_and_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, ENV)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ('{url: "redis://10.0.0.5:6379/2"}', "redis://10.0.0.5:6379/2"),
        ('{cluster: true, nodes: ["r1:7000", "r2:7001", "[::1]:7002"]}', "redis+cluster://r1:7000,r2:7001,[::1]:7002"),
        ('{sentinel: mymaster, nodes: ["s1:26379", s2], db: 3}', "redis+sentinel://s1:26379,s2/mymaster/3"),
    ],
)  # fmt: skip
def test_the_redis_section_names_the_shared_redis(section: str, url: str) -> None:
    from gateway.config.schema import shared_redis_url

    cfg = parse_config(GOOD + f"redis: {section}\n", ENV)
    assert shared_redis_url(cfg, {"REDIS_URL": "redis://elsewhere"}) == url
    # routing.redis_url still wins (older configs), and REDIS_URL is the last resort.
    assert shared_redis_url(parse_config(GOOD, ENV), {"REDIS_URL": "redis://elsewhere"}) == "redis://elsewhere"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{cluster: true}", "redis: `nodes` must list at least one host:port"),
        ('{nodes: ["r1:7000"]}', "`nodes` needs `cluster: true` or `sentinel: <service>`"),
        ('{cluster: true, sentinel: m, nodes: ["r1:1"]}', "exclude each other"),
        ('{url: "redis://x", cluster: true, nodes: ["r1:1"]}', "not both"),
        ('{cluster: true, nodes: ["r1:7000/0,evil"]}', "'r1:7000/0,evil' is not a host:port"),
        ('{sentinel: "a/b", nodes: ["s1"]}', "is not a plain name"),
        ('{cluster: true, nodes: ["r1:7000"], db: 2}', "only database 0"),
        ("{clusters: true}", "redis.clusters: unknown field"),
    ],
)  # fmt: skip
def test_a_bad_redis_section_is_named(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + f"redis: {section}\n", ENV)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("provider: local-vllm", "provider: nowhere"),
         "models[0].targets[1].provider: 'nowhere' is not declared under providers"),
        (GOOD.replace("type: openai-compatible", "type: telepathy"),
         "providers.local-vllm.type: unknown provider type 'telepathy'"),
        (GOOD.replace("provider: local-vllm", "provider: groq"),
         "models[0].targets[1].provider: 'groq' is not declared under providers and GROQ_API_KEY is not set"),
        (GOOD.replace("model: gpt-4o-mini, ", ""), "models[0].targets[0].model: required with provider"),
        (GOOD.replace("strategy: {mode: loadbalance}", "strategy: {mode: single}"),
         "models[0].strategy.mode: 'single' takes one target"),
        (GOOD.replace("{provider: openai, model: gpt-4o-mini, weight: 3}", "{alias: chat-default}"),
         "models[0].targets[0].alias: 'chat-default' refers back to itself through aliases"),
        (GOOD.replace("{provider: openai, model: gpt-4o-mini, weight: 3}", "{alias: nope}"),
         "models[0].targets[0].alias: no model named 'nope'"),
        (GOOD.replace("{provider: openai, model: gpt-4o-mini, weight: 3}", "{provider: openai, alias: x, model: m}"),
         "models[0].targets[0]: a target needs exactly one of provider (with model), alias, or strategy"),
        (GOOD.replace("strategy: {mode: loadbalance}", "strategy: {mode: conditional, conditions: [{query: {metadata.tier: pro}, then: fast}]}"),
         "models[0].strategy.conditions[0].then: no target named 'fast'"),
        (GOOD.replace("strategy: {mode: loadbalance}", "strategy: {mode: conditional, default: a}").replace("{provider: openai,", "{name: a, provider: openai,").replace("weight: 1}", "weight: 1, name: b}").replace("mode: conditional, default: a}", "mode: conditional, default: a, conditions: [{query: {metadata.tier: {$near: 1}}, then: b}]}"),
         "models[0].strategy.conditions[0].query.metadata.tier: unknown operator '$near'"),
    ],
)  # fmt: skip
def test_cross_reference_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_catalog(parse_config(text, ENV), ENV, HealthRegistry())
    assert message in str(caught.value)


def test_undeclared_preset_with_key_in_env_is_usable() -> None:
    text = GOOD.replace("provider: local-vllm", "provider: groq")
    env = {**ENV, "GROQ_API_KEY": "gsk-1"}
    catalog = build_catalog(parse_config(text, env), env, HealthRegistry())
    assert catalog.resolve("chat-default").leaves()[1].target.provider.name == "groq"



def test_direct_routes_are_built_once_per_name_and_bounded() -> None:
    from gateway.routing import catalog as catalog_module

    catalog = build_catalog(parse_config(GOOD, ENV), ENV, HealthRegistry())
    first = catalog.resolve("openai/gpt-4o")
    assert catalog.resolve("openai/gpt-4o") is first  # built once, not per request
    assert first.leaves()[0].target.model == "gpt-4o" and not first.configured
    for i in range(catalog_module._MAX_DIRECT + 5):  # client-chosen names are unbounded
        catalog.resolve(f"openai/model-{i}")
    assert len(catalog._direct) <= catalog_module._MAX_DIRECT
    with pytest.raises(Exception, match="does not exist"):
        catalog.resolve("nobody/knows")  # a failed name is not remembered
    assert "nobody/knows" not in catalog._direct

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT, env=clean_env("compiled", env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_check_config_command() -> None:
    good = write_config(GOOD)
    done = _cli("check-config", str(good), env=ENV)
    assert done.returncode == 0, done.stderr
    bad = write_config(GOOD.replace("weight: 1}", 'weight: "high"}'))
    done = _cli("check-config", str(bad), env=ENV)
    assert done.returncode == 2
    assert 'models[0].targets[1].weight: expected a number, got "high"' in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_bad_config_exits_nonzero() -> None:
    bad = write_config(GOOD.replace("env:OPENAI_KEY", "env:MISSING_KEY"))
    done = _cli("serve", "--config", str(bad), env=ENV)
    assert done.returncode == 2 and "MISSING_KEY is not set" in done.stderr


def test_refuses_public_bind_without_master_key() -> None:
    done = _cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2 and "--allow-unauthenticated" in done.stderr
