"""The docs tell the truth: the README's Quick start is what CI runs, every command is documented, the CLI
reference is the code's own --help, the tag table is the taxonomy, and cron is set up as the docs say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tracker.cli import cli

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
CLI_REFERENCE = (DOCS / "cli-reference.md").read_text()
QUICK_START = [
    "pip install -e . && tracker demo",
    "pip install -e '.[test]' && pytest -q -p no:cacheprovider",
]


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


def test_readmes_first_shell_block_is_exactly_the_quick_start():
    block = re.search(r"```[a-z]*\n(.*?)```", README, re.DOTALL)
    assert block and block.group(1).splitlines() == QUICK_START
    assert README.index("## Quick start") < block.start()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_a_readme_section(name):
    result = CliRunner().invoke(cli, [name, "-h"])
    assert result.exit_code == 0
    assert "Example:" in result.output, f"{name} --help has no Example block"
    assert f"tracker {name}" in README, f"README never mentions `tracker {name}`"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_in_the_cli_reference(name):
    assert f"\n## tracker {name}\n" in CLI_REFERENCE, f"docs/cli-reference.md has no `tracker {name}`"


@pytest.mark.parametrize("path", ["README.md", "docs/cli-reference.md"])
def test_help_snippets_are_current(path):
    """The --help texts embedded with cog match the code (`cog -r docs/cli-reference.md` refreshes them)."""
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", str(ROOT / path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def tag_rows(text: str) -> list[tuple[str, str]]:
    """(tag, facet) of each row of a `| tag | facet | meaning |` table."""
    return re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", text, re.MULTILINE)


def test_the_tag_table_is_the_taxonomy():
    taxonomy = yaml.safe_load((ROOT / "tracker" / "defaults" / "rules" / "taxonomy.yml").read_text())
    slugs = {tag["slug"] for tag in taxonomy["tags"]}
    rows = tag_rows(README)
    assert {tag for tag, _ in rows} == slugs and len(rows) == len(slugs)
    assert rows == tag_rows((DOCS / "index.md").read_text()), "README and docs/index.md list different tags"
    assert "LLM-aided visual reasoning" in README


def test_every_docs_page_is_in_the_site_nav_and_every_link_resolves():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = {page for entry in config["nav"] for page in entry.values()}
    assert nav == {p.name for p in DOCS.glob("*.md")}
    for target in re.findall(r"\]\(((?:docs/)[^)#]*)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"


def test_mkdocs_site_builds_strictly(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="mkdocs is the docs extra (pip install -e '.[docs]'); .ci/run builds the site"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cron_is_set_up_as_the_docs_say():
    crontab = (ROOT / "cron" / "crontab.example").read_text()
    active = [line for line in crontab.splitlines() if line and not line.startswith("#")]
    venv = re.search(r"^PATH=([^:]+)/bin:", crontab, re.MULTILINE)
    assert venv and venv.group(1) == "/srv/tracker/venv"
    for doc in (README, (DOCS / "operations.md").read_text()):
        assert f"python3 -m venv {venv.group(1)}" in doc
    assert any(line.startswith("MAILTO=") for line in active), "failures reach nobody without MAILTO"
    assert any("tracker status" in line for line in active), "the status monitor line is commented out"
    for script in ("nightly.sh", "weekly.sh"):
        body = (ROOT / "cron" / script).read_text()
        assert ">&2" in body, f"{script} prints nothing on failure, so cron mails nothing"
        config_error = re.search(r"^\s*2\) log .*FAILED", body, re.MULTILINE)
        assert config_error, f"{script} does not tell a configuration error from one the next run retries"
    for path in ("db/nightly.log", "db/weekly.log", "site/index.html"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
