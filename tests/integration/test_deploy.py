"""The deployment files hold together: compose validates, every command exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.entrypoints.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


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


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed: apt-get install docker-compose")
def test_compose_file_validates() -> None:
    proc = subprocess.run(["docker-compose", "-f", "docker-compose.kafka.yml", "config", "-q"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
