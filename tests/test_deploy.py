"""The deployment files (deploy/): this machine kind has no container engine, so what can be
checked here is: they parse; every variable they set is one the gateway or its config reads;
the config they mount is the one they point GATEWAY_CONFIG at, the same in both, and a gateway
serves it; probes, ports and the load balancer's upstreams agree; and the gateway, started
with that config on this machine's Redis and a fresh PostgreSQL database, answers the probes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from gateway.config import parse_config
from gateway.routing.catalog import build_catalog
from gateway.routing.health import HealthRegistry
from tests.harness import ROOT, start_gateway
from tests.postgres import PG, drop_database, postgres_database

DEPLOY = ROOT / "deploy"
SOURCE = "\n".join(p.read_text() for p in (ROOT / "gateway").rglob("*.py"))
PORT = 8080  # the Dockerfile's ENTRYPOINT serves here


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def _kubernetes() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "gateway.yaml").read_text())
    return {doc["kind"]: doc for doc in docs}


def _read_by_gateway(name: str, config: str) -> bool:
    """Whether the gateway reads `name`: in its code, or as an `env:` reference of the config."""
    return f'"{name}"' in SOURCE or f"env:{name}" in config


def _entrypoint_port() -> int:
    match = re.search(r'ENTRYPOINT \[.*"--port", "(\d+)"\]', (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile's ENTRYPOINT names its port"
    return int(match.group(1))


def test_compose_runs_two_gateways_behind_nginx_on_redis_and_postgresql() -> None:
    compose = _compose()
    services = compose["services"]
    gateways = {name: s for name, s in services.items() if name.startswith("gateway-")}
    assert len(gateways) >= 2 and {"nginx", "redis", "postgres"} <= set(services)
    config = (DEPLOY / "gateway.yaml").read_text()
    for name, service in gateways.items():
        env = service["environment"]
        unknown = [k for k in env if not _read_by_gateway(k, config)]
        assert unknown == [], f"{name} sets variables the gateway never reads: {unknown}"
        mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert (DEPLOY / mounted[env["GATEWAY_CONFIG"]]).resolve() == DEPLOY / "gateway.yaml"
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["GATEWAY_USAGE_STORE"].startswith("postgresql://") and "@postgres:" in env["GATEWAY_USAGE_STORE"]
        assert set(service["depends_on"]) == {"redis", "postgres"}
    assert _entrypoint_port() == PORT
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstreams = re.findall(r"server (\S+):(\d+)", nginx)
    assert {host for host, _ in upstreams} == set(gateways)
    assert {int(port) for _, port in upstreams} == {PORT}
    assert "proxy_next_upstream error timeout" in nginx and "proxy_buffering off" in nginx
    listen = int(re.search(r"listen (\d+)", nginx).group(1))  # type: ignore[union-attr]
    assert services["nginx"]["ports"] == [f"{PORT}:{listen}"]
    assert (DEPLOY / mounted_path(services["nginx"], "/etc/nginx/nginx.conf")).name == "nginx.conf"


def mounted_path(service: dict[str, Any], inside: str) -> str:
    return next(v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == inside)


def test_kubernetes_probes_ports_drain_and_secrets_agree() -> None:
    kinds = _kubernetes()
    assert {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == PORT and port["name"] == "http"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    config_text = kinds["ConfigMap"]["data"]["gateway.yaml"]
    assert config_text == (DEPLOY / "gateway.yaml").read_text()  # one config for both
    cfg = parse_config(config_text, _env(config_text))
    # Kubernetes' grace covers the preStop wait and the gateway's own drain.
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + cfg.server.shutdown_timeout
    env = {e["name"]: e for e in container["env"]}
    assert env["GATEWAY_CONFIG"]["value"] == "/etc/gateway/gateway.yaml"
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/etc/gateway" and pod["volumes"][0]["configMap"]["name"] == "gateway-config"
    for name in ("REDIS_URL", "GATEWAY_USAGE_STORE", "GATEWAY_MASTER_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "gateway-secrets"
    assert [n for n in env if not _read_by_gateway(n, config_text)] == []
    secret = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    wanted = {e["valueFrom"]["secretKeyRef"]["key"] for e in env.values() if "valueFrom" in e}
    assert wanted == set(secret["stringData"])
    service = kinds["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == "http" and service["selector"] == {"app": "gateway"}
    budget = kinds["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] < kinds["Deployment"]["spec"]["replicas"]
    assert container["args"] == ["--workers", str(cfg.server.workers)]


def _env(config: str) -> dict[str, str]:
    return {name: "placeholder" for name in re.findall(r"env:([A-Z_]+)", config)}


def test_the_deployed_config_serves_and_answers_the_probes(impl: str) -> None:
    """The config the files mount, on this machine's Redis and a fresh PostgreSQL database, as
    the deployments set them: ready, live, and the ledger on PostgreSQL."""
    config = DEPLOY / "gateway.yaml"
    text = config.read_text()
    build_catalog(parse_config(text, _env(text)), _env(text), HealthRegistry())
    database = postgres_database()
    env = {
        **_env(text), "GATEWAY_CONFIG": str(config), "REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_USAGE_STORE": PG.format(db=database), "GATEWAY_MASTER_KEY": "deploy-test-key",
    }  # fmt: skip
    gateway = start_gateway(impl, ["--workers", "1"], env)
    try:
        ready = httpx.get(f"{gateway.url}/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["metering"]["store"] == "postgresql"
        assert httpx.get(f"{gateway.url}/health/live", timeout=10).status_code == 200
        models = httpx.get(f"{gateway.v1}/models", headers={"authorization": "Bearer deploy-test-key"})
        assert [m["id"] for m in models.json()["data"]] == ["chat"]
    finally:
        gateway.stop()
        drop_database(database)


def test_deploy_paths_exist() -> None:
    for path in ("docker-compose.yml", "nginx.conf", "gateway.yaml", "kubernetes/gateway.yaml",
                 "kubernetes/secret.example.yaml"):  # fmt: skip
        assert (DEPLOY / path).is_file(), path
    assert Path(ROOT / "Dockerfile").is_file()
