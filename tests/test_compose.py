"""docker-compose.yml validates and points only at things that exist in the repository.

No Docker engine is involved: `docker-compose config` only parses, merges and interpolates the
file. It runs with a throw-away env file (.env.example plus test secrets), never the developer's
.env. Without docker-compose the tests that need it skip, or fail when CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
REGISTER_SCRIPT = ROOT / "deploy" / "temporal" / "register.sh"

WEB_PORTS = {"campaigns": 8001, "notices": 8002, "removals": 8003, "interventions": 8004}
APP_SERVICES = {"migrate", "worker", *WEB_PORTS}
EXPECTED_SERVICES = APP_SERVICES | {
    "postgres", "temporal-admin-tools", "temporal", "temporal-register", "temporal-ui", "mailpit",
}
ONE_SHOT_JOBS = {"temporal-admin-tools", "temporal-register", "migrate"}

TEST_SECRET = "compose-test-secret-" + "x" * 40
TEST_PASSWORD = "compose-test-password"

MISSING_BINARY = (
    "docker-compose is not installed: docker-compose.yml cannot be validated "
    "(install it with `apt-get install -y docker-compose`)"
)


# --- helpers -----------------------------------------------------------------------------------

def _compose_binary() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING_BINARY)
        pytest.skip(MISSING_BINARY)
    return path


def _compose_variables() -> set[str]:
    """Every ${NAME...} that docker-compose.yml interpolates."""
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))


def _clean_environ() -> dict[str, str]:
    """The current environment minus whatever could change the interpolation or the project."""
    drop = _compose_variables() | {"SECRET_KEY", "POSTGRES_PASSWORD"}
    return {
        key: value for key, value in os.environ.items()
        if key not in drop and not key.startswith(("COMPOSE_", "DOCKER_"))
    }


def _env_file(directory: Path, *, secret_key: str | None, postgres_password: str | None) -> Path:
    """.env.example as a user would copy it, plus the required values that are given."""
    lines = [ENV_EXAMPLE.read_text()]
    if postgres_password is not None:
        lines.append(f"POSTGRES_PASSWORD={postgres_password}")
    if secret_key is not None:
        lines.append(f"SECRET_KEY={secret_key}")
    path = directory / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_compose(binary: str, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT, env=_clean_environ(), capture_output=True, text=True, timeout=120, check=False,
    )


def _yaml_to_data(text: str, binary: str) -> Any:
    """Parse `docker-compose config`'s YAML without adding PyYAML to the project.

    docker-compose v1 is itself a Python program built on PyYAML: when this interpreter has no
    yaml module, the one named in the docker-compose script's shebang does the conversion.
    """
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    with open(binary, "rb") as handle:
        first_line = handle.readline().decode("utf-8", "replace").strip()
    if not (first_line.startswith("#!") and "python" in first_line):
        pytest.skip("docker-compose has no `config --format json` and no Python/PyYAML is available to read its YAML")
    interpreter = shlex.split(first_line[2:])
    converted = subprocess.run(
        [*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=text, capture_output=True, text=True, timeout=60, check=False,
    )
    assert converted.returncode == 0, f"YAML to JSON conversion failed: {converted.stderr}"
    return json.loads(converted.stdout)


def _load_config(binary: str, env_file: Path) -> dict[str, Any]:
    as_json = _run_compose(binary, env_file, "config", "--format", "json")  # docker compose v2
    if as_json.returncode == 0 and as_json.stdout.lstrip().startswith("{"):
        data: dict[str, Any] = json.loads(as_json.stdout)
        return data
    as_yaml = _run_compose(binary, env_file, "config")  # docker-compose v1: YAML only
    assert as_yaml.returncode == 0, f"docker-compose config failed:\n{as_yaml.stderr}"
    data = _yaml_to_data(as_yaml.stdout, binary)
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths of the bind mounts, from short ("src:dst:ro", v1) or long (v2) syntax."""
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(str(volume["source"]))
        else:
            source = str(volume).split(":", 1)[0]
            if source.startswith(("/", ".", "~")):
                sources.append(source)
    return sources


def _published_ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    ports = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.add((int(port["published"]), int(port["target"])))
        else:  # "[ip:]published:target[/proto]"
            parts = str(port).split("/", 1)[0].split(":")
            ports.add((int(parts[-2]), int(parts[-1])))
    return ports


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def _module_file(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__main__.py"


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> str:
    return _compose_binary()


@pytest.fixture(scope="module")
def config(compose: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = _env_file(tmp_path_factory.mktemp("compose"), secret_key=TEST_SECRET, postgres_password=TEST_PASSWORD)
    return _load_config(compose, env_file)


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = config["services"]
    return result


# --- tests -------------------------------------------------------------------------------------

def test_config_validates_with_exactly_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_compose_file_has_no_obsolete_version_key() -> None:
    assert not re.search(r"^version\s*:", COMPOSE_FILE.read_text(), re.MULTILINE)


def test_secret_key_is_required(compose: str, tmp_path: Path) -> None:
    env_file = _env_file(tmp_path, secret_key=None, postgres_password=TEST_PASSWORD)
    result = _run_compose(compose, env_file, "config", "-q")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stdout + result.stderr


def test_postgres_password_is_required(compose: str, tmp_path: Path) -> None:
    env_file = _env_file(tmp_path, secret_key=TEST_SECRET, postgres_password=None)
    result = _run_compose(compose, env_file, "config", "-q")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD must be set" in result.stdout + result.stderr


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict[str, Any]]) -> None:
    built = {name: service for name, service in services.items() if "build" in service}
    assert set(built) == APP_SERVICES, "the application containers, and only they, are built"
    assert len({service["image"] for service in built.values()}) == 1, "one shared image"
    for name, service in built.items():
        build = service["build"]
        context = (ROOT / build["context"]).resolve()  # absolute in the output, relative kept working
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        assert dockerfile == ROOT / "deploy" / "Dockerfile"
        assert str(service["image"]).startswith("relais-app")


def test_bind_mounts_exist_in_the_repository(services: dict[str, dict[str, Any]]) -> None:
    seen = 0
    for name, service in services.items():
        for source in _bind_sources(service):
            path = (ROOT / source).resolve()
            assert path.is_relative_to(ROOT), f"{name}: bind mount {source} outside the repository"
            assert path.exists(), f"{name}: bind-mounted {path} missing"
            seen += 1
    assert seen >= 4  # init-databases.sh, setup-schema.sh, register.sh, dynamicconfig/


def test_commands_point_at_existing_modules(services: dict[str, dict[str, Any]]) -> None:
    modules = set()
    for name, service in services.items():
        command = _command(service)
        if "-m" in command[:-1] and Path(command[0]).name.startswith("python"):
            module = command[command.index("-m") + 1]
            assert _module_file(module).is_file(), f"{name}: module {module} not found"
            modules.add(module)
        if command[:1] == ["uvicorn"]:
            target = command[1]
            module, _, attribute = target.partition(":")
            source = _module_file(module)
            assert source.is_file(), f"{name}: {module} not found"
            assert re.search(rf"^{attribute}\s*(:[^=]*)?=", source.read_text(), re.MULTILINE), (
                f"{name}: {source} defines no `{attribute}`"
            )
            modules.add(target)
    assert modules == {"core.migrate", "wiring"} | {f"services.{n}.app:app" for n in WEB_PORTS}
    assert _command(services["worker"]) == ["python", "-m", "wiring", "worker"]
    assert _command(services["migrate"]) == ["python", "-m", "core.migrate"]
    for name in WEB_PORTS:
        assert _command(services[name])[:2] == ["uvicorn", f"services.{name}.app:app"]


def test_published_ports(services: dict[str, dict[str, Any]]) -> None:
    for name, port in WEB_PORTS.items():
        assert _published_ports(services[name]) == {(port, 8000)}
    assert _published_ports(services["temporal-ui"]) == {(8233, 8080)}
    assert (8025, 8025) in _published_ports(services["mailpit"])


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    completed = "service_completed_successfully"
    assert _depends_on(services["temporal-admin-tools"]) == {"postgres": "service_healthy"}
    assert _depends_on(services["temporal"]) == {"temporal-admin-tools": completed}
    assert _depends_on(services["temporal-register"]) == {"temporal": "service_healthy"}
    assert _depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    worker = _depends_on(services["worker"])
    assert worker["migrate"] == completed and worker["temporal-register"] == completed
    for name in WEB_PORTS:
        assert _depends_on(services[name])["migrate"] == completed
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"])
    for name in ONE_SHOT_JOBS:
        assert services[name].get("restart") in (None, "no"), f"{name} is a one-shot job"
    assert services["temporal"]["environment"]["NUM_HISTORY_SHARDS"]
    assert services["temporal"]["image"].startswith("temporalio/server:")


def test_app_environment_is_a_valid_prod_configuration(services: dict[str, dict[str, Any]]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        environment = {key: str(value) for key, value in services[name]["environment"].items()}
        assert set(environment) <= fields, f"{name}: unknown settings {set(environment) - fields}"
        assert environment["ENVIRONMENT"] == "prod"
        assert environment["SECRET_KEY"] == TEST_SECRET
        assert environment["DATABASE_URL"] == f"postgresql://relais:{TEST_PASSWORD}@postgres:5432/relais"
        assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert (environment["SMTP_HOST"], environment["SMTP_PORT"]) == ("mailpit", "1025")
        # model_validate: these values only, no .env nor os.environ; the prod validator runs.
        settings = Settings.model_validate({key.lower(): value for key, value in environment.items()})
        assert not settings.is_dev
        assert settings.service_urls() == {n: f"http://localhost:{port}" for n, port in WEB_PORTS.items()}
        assert settings.temporal_ui_url == "http://localhost:8233"
        assert settings.mailcatcher_url == "http://localhost:8025"


def test_env_example_documents_every_setting_and_compose_variable() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()
    assert _compose_variables() - documented == set()


def test_env_example_changes_nothing_for_make_run(tmp_path: Path) -> None:
    """A plain `cp .env.example .env` keeps every default of core/settings.py."""
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    from_example = Settings(_env_file=env_file)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


def test_register_script_lists_the_search_attributes() -> None:
    text = REGISTER_SCRIPT.read_text()
    block = re.search(r'^SEARCH_ATTRIBUTES="(.*?)"', text, re.MULTILINE | re.DOTALL)
    assert block, f"no SEARCH_ATTRIBUTES=\"...\" block in {REGISTER_SCRIPT}"
    assert block.group(1).split() == [key.name for key in SEARCH_ATTRIBUTES]
    assert "--type Keyword" in text


def test_core_temporal_prints_the_same_names() -> None:
    """`python -m core.temporal` is what operators use to compare with register.sh."""
    result = subprocess.run(
        [sys.executable, "-m", "core.temporal"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    assert result.stdout.split() == [key.name for key in SEARCH_ATTRIBUTES]
