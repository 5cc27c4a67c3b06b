"""`propylon check` and `propylon init`, run as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

VALID = """\
gateway:
  listen: 127.0.0.1:${PORT:-8080}
services:
  api:
    targets:
      - url: http://127.0.0.1:3001
routes:
  - name: api
    match: {path: /api}
    service: api
"""
# Three problems, on lines 3, 6 and 10.
BROKEN = """\
gateway:
  name: edge
  graceful_timeout: forever
services:
  api:
    targets: [{url: "http://127.0.0.1:3001", weigth: 2}]
routes:
  - name: api
    match: {path: /api}
    service: apx
"""
ISSUE_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>\S+): (?P<problem>.+)$")


def propylon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The variables the init template reads must come from the test, not from
    # whoever runs it.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROPYLON_", "USERS_", "ORDERS_", "PORT"))
    }
    return subprocess.run(
        [sys.executable, "-m", "propylon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_valid_file(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(VALID)
    result = propylon("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gateway.yaml: OK (1 service, 1 route)"
    assert result.stderr == ""


def test_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = propylon("check", "-c", "broken.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    matches = [ISSUE_LINE.match(line) for line in lines]
    assert all(matches), lines
    located = [(m["file"], int(m["line"]), m["path"]) for m in matches if m]
    assert located == [
        ("broken.yaml", 3, "gateway.graceful_timeout"),
        ("broken.yaml", 6, "services.api.targets.0.weigth"),
        ("broken.yaml", 10, "routes.0.service"),
    ]
    assert "did you mean 'weight'" in lines[1]


def test_check_reads_dotenv_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "gateway.yaml").write_text(VALID)
    (tmp_path / "conf" / ".env").write_text("PORT=not-a-port\n")
    result = propylon("check", "--config", "conf/gateway.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("conf/gateway.yaml:2: gateway.listen: invalid listen address")


def test_check_missing_file(tmp_path: Path) -> None:
    result = propylon("check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "gateway.yaml: no such file (`propylon init` writes one)"
    assert "Traceback" not in result.stderr


def test_check_help_has_an_example(tmp_path: Path) -> None:
    result = propylon("check", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "propylon check -c deploy/gateway.yaml" in result.stdout


def test_init_writes_files_that_pass_check(tmp_path: Path) -> None:
    result = propylon("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Next steps" in result.stdout
    config = (tmp_path / "gateway.yaml").read_text()
    assert "${PROPYLON_PORT:-8080}" in config
    for section in ("gateway:", "services:", "routes:", "cors:", "security_headers:"):
        assert f"\n{section}" in config
    assert "PROPYLON_PORT=" in (tmp_path / ".env.example").read_text()
    checked = propylon("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "gateway.yaml: OK (2 services, 4 routes)"


def test_init_into_a_new_directory_and_env_example_as_env(tmp_path: Path) -> None:
    result = propylon("init", "deploy/edge", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / "deploy" / "edge"
    # The example values are valid too: copying them is the documented next step.
    (target / ".env").write_text((target / ".env.example").read_text())
    checked = propylon("check", "-c", "deploy/edge/gateway.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("# mine\n")
    result = propylon("init", cwd=tmp_path)
    assert result.returncode == 1
    assert "gateway.yaml already exists" in result.stderr
    assert "--force" in result.stderr
    assert (tmp_path / "gateway.yaml").read_text() == "# mine\n"
    assert not (tmp_path / ".env.example").exists()

    forced = propylon("init", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "gateway.yaml").read_text() != "# mine\n"
