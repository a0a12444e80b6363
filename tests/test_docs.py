"""The README tells the truth: its Quick start is what CI runs, and every command is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def quick_start() -> list[str]:
    block = re.search(r"```(?:bash|sh|shell|console)?\n(.*?)```", README, re.DOTALL)
    assert block, "README has no fenced shell block"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    install_demo, tests = quick_start()
    assert "tracker demo" in install_demo and install_demo.startswith("pip install")
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_a_readme_section(name):
    result = CliRunner().invoke(cli, [name, "-h"])
    assert result.exit_code == 0
    assert "Example:" in result.output, f"{name} --help has no Example block"
    assert f"tracker {name}" in README, f"README never mentions `tracker {name}`"


def test_readme_help_snippets_are_current():
    """The --help texts embedded with cog match the code (`cog -r README.md` refreshes them)."""
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
