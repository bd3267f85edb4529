"""The deployment files hold together: compose validates, every command exists, and the image
installs exactly what deploy/requirements.lock pins, hashes checked."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from streams.entrypoints.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "deploy" / "requirements.lock"


def _commands() -> list[list[str]]:
    compose = yaml.safe_load((REPO / "docker-compose.kafka.yml").read_text())
    cmds = [s["command"] for s in compose["services"].values() if "command" in s]
    for doc in yaml.safe_load_all((REPO / "deploy" / "k8s" / "sor-notify.yaml").read_text()):
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        cmds += [c["command"] for c in spec.get("containers", []) if "command" in c]
    return cmds


def test_every_deployed_command_is_a_real_sor_notify_command() -> None:
    cmds = _commands()
    assert {c[1] for c in cmds} >= {"db", "topics", "worker", "web"}
    for cmd in cmds:
        assert cmd[0] == "sor-notify"
        build_parser().parse_args(cmd[1:])  # exits on an unknown command


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed: apt-get install docker-compose",
)
def test_compose_file_validates_and_asks_for_a_secret_key_of_ones_own() -> None:
    def config(**env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if k != "SOR_SECRET_KEY"} | env
        return subprocess.run(
            ["docker-compose", "-f", "docker-compose.kafka.yml", "config", "-q"],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=clean,
        )

    proc = config(SOR_SECRET_KEY=secrets.token_hex(32))
    assert proc.returncode == 0, proc.stderr
    # No key in the file for anyone to copy: without one of your own, compose says so.
    refused = config()
    assert refused.returncode != 0 and "set SOR_SECRET_KEY to 32 or more random characters" in refused.stderr


def _locked() -> dict[str, tuple[Version, list[str]]]:
    """The lock's pins: name -> (version, sha256 hashes)."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", line)
        if pin:
            current = canonicalize_name(pin[1])
            assert current not in pins, f"{current} pinned twice in {LOCK.name}"
            pins[current] = (Version(pin[2]), [])
        elif line.strip().startswith("--hash=") and current is not None:
            pins[current][1].append(line.strip().rstrip("\\").strip())
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{LOCK.name}: a line that is neither a pin nor a hash: {line!r}")
    return pins


def test_lock_pins_every_declared_dependency_with_hashes() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _locked()
    assert declared
    for spec in map(Requirement, declared):
        if spec.marker is not None and not spec.marker.evaluate():
            continue
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is declared in pyproject.toml but not in {LOCK.name}"
        version, hashes = pins[name]
        assert spec.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside pyproject.toml's {spec}"
        )
        assert any(h.startswith("--hash=sha256:") for h in hashes), f"{name}: no sha256 hash"
    # Every pin, not only the declared ones: --require-hashes refuses a pin without a hash.
    assert all(hashes for _, hashes in pins.values())


def test_lock_names_no_local_index_or_path() -> None:
    """Only pins, their hashes and comments: no index, link or path of the machine it was made on."""
    shapes = (
        r"\s*(#.*)?",
        r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==[^\s/:]+ \\",
        r"\s+--hash=sha256:[0-9a-f]{64}( \\)?",
    )
    for line in LOCK.read_text().splitlines():
        assert any(re.fullmatch(shape, line) for shape in shapes), f"{LOCK.name}: {line!r}"


def test_readme_says_how_to_refresh_the_lock() -> None:
    header = LOCK.read_text().splitlines()[1].lstrip("#").strip()
    assert header.startswith("uv pip compile pyproject.toml --generate-hashes")
    assert header in (REPO / "README.md").read_text()


def test_image_installs_from_the_lock_with_hashes_then_the_package_alone() -> None:
    runs = [
        line.split(None, 1)[1]
        for line in (REPO / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN ") and "pip install" in line
    ]
    assert runs, "the Dockerfile installs nothing"
    first, *rest = runs
    assert "--require-hashes" in first.split()
    assert re.search(r"(^|\s)-r deploy/requirements\.lock(\s|$)", first), first
    assert rest and all("--no-deps" in run.split() for run in rest), rest
    copies = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY deploy/requirements.lock" in copies
