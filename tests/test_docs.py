"""The documents against the code: every command and option of docs/commands.md with the
default ``--help`` shows, the code map against the modules, the README's commands, set-up
and quick start against what they name, and every relative link."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import REPO

from charrnn.cli import cli

COMMANDS_MD = REPO / "docs" / "commands.md"
NO_DEFAULT = "–"  # what a table shows for an option that --help gives no default
RANGE = re.compile(r"(?:[-\d.e+]+<=?)?x(?:[<>]=?[-\d.e+]+)?")  # click's "0<x<1", "x>=0"


def command_contexts() -> dict[str, click.Context]:
    """Every command's context, by its name ("" for ``charrnn`` itself), as --help makes it."""
    group = click.Context(cli, info_name="charrnn", **cli.context_settings)
    contexts = {"": group}
    for name, command in cli.commands.items():
        contexts[name] = click.Context(command, info_name=name, parent=group)
    return contexts


def shown_default(option: click.Option, context: click.Context) -> str | None:
    """The default as --help shows it, without the range click puts beside it."""
    help_text = " ".join(option.get_help_record(context)[1].split())
    found = re.search(r"\[default: ([^\]]*)\]", help_text)
    if not found:
        return None
    parts = found.group(1).split("; ")
    if len(parts) > 1 and RANGE.fullmatch(parts[-1]):
        parts.pop()
    return "; ".join(parts)


def options_of(context: click.Context) -> list[click.Option]:
    help_option = context.command.get_help_option(context)
    return [param for param in context.command.get_params(context)
            if isinstance(param, click.Option) and param is not help_option]


def documented_section(name: str) -> str:
    """The part of docs/commands.md about the command ``name``: from its heading, which is
    the command's name alone, to the next."""
    heading = f"`charrnn {name}".rstrip() + "`"
    sections = re.split(r"^## ", COMMANDS_MD.read_text(), flags=re.MULTILINE)
    found = [section for section in sections if section.split("\n")[0].strip() == heading]
    assert len(found) == 1, f"docs/commands.md needs one '## {heading}' heading"
    return found[0]


def documented_options(section: str) -> list[tuple[set[str], str, str]]:
    """Each table row of ``section`` that documents options: (its option names, its default
    cell, the whole row)."""
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        names = set(re.findall(r"`(--?[A-Za-z0-9][a-z0-9-]*)", cells[0])) if cells else set()
        if names:
            rows.append((names, cells[1].replace("`", ""), line))
    return rows


@pytest.mark.parametrize("name", ["", *sorted(cli.commands)])
def test_commands_md_documents_every_option_with_its_default(name):
    context = command_contexts()[name]
    section = documented_section(name)
    usage = " ".join(["charrnn", name, *context.command.collect_usage_pieces(context)])
    assert f"Usage: `{' '.join(usage.split())}`" in section, usage
    rows = documented_options(section)
    for option in options_of(context):
        names = set(option.opts + option.secondary_opts)
        found = [row for row in rows if row[0] == names]
        assert len(found) == 1, f"{name}: one row for {sorted(names)}"
        _, default, row = found[0]
        shown = shown_default(option, context)
        if shown is None:
            assert default in (NO_DEFAULT, "off" if option.is_flag else NO_DEFAULT), row
        else:
            assert " ".join(default.split()) == shown, f"{row}\n--help shows: {shown}"
        if isinstance(option.type, click.Choice):
            for choice in option.type.choices:
                assert f"`{choice}`" in row, f"{name} {sorted(names)}: choice {choice!r}"
    offered = {flag for option in options_of(context)
               for flag in option.opts + option.secondary_opts}
    documented = set().union(*(row[0] for row in rows)) if rows else set()
    assert documented <= offered, f"{name}: documented, but not options: {documented - offered}"


def test_commands_md_has_a_section_for_every_command_and_no_other():
    headings = re.findall(r"^## `charrnn ([a-z]+)`$", COMMANDS_MD.read_text(), re.MULTILINE)
    assert sorted(headings) == sorted(cli.commands)


def test_the_readme_links_every_command_to_its_reference():
    readme = (REPO / "README.md").read_text()
    for name in cli.commands:
        assert re.search(rf"\[`charrnn {name}`\]\(docs/commands\.md#charrnn-{name}\)", readme), name



def test_the_readme_quick_start_sample_is_what_the_command_prints():
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start")[1].split("```")[1].strip("\n")
    command, printed = block.split("\n", 1)
    assert command.startswith("$ charrnn ")
    result = CliRunner().invoke(cli, shlex.split(command)[2:])
    assert result.exit_code == 0 and result.stdout == printed + "\n"


@pytest.mark.parametrize("ci, step", [(".ci/run", ""), (".github/workflows/ci.yml", "- run: ")])
def test_the_readme_set_up_commands_are_what_ci_runs(ci, step):
    readme = (REPO / "README.md").read_text()
    set_up = readme.split("## Set up")[1].split("```")[1].strip().splitlines()
    lines = (REPO / ci).read_text().splitlines()
    ran = [lines[index + 1].strip().removeprefix(step) for index, line in enumerate(lines)
           if line.strip().startswith("# README, set-up command")]
    assert set_up == ran and len(ran) == 2


def github_anchor(heading: str) -> str:
    """The anchor GitHub makes of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    return {github_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


DOCUMENTS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "benchmarks").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_points_to_what_exists(document):
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: {link}"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{document.name}: {link}: no such heading"


def test_the_code_map_names_every_module_and_no_other():
    package = REPO / "charrnn"
    modules = {str(path.relative_to(package)) for path in package.glob("*/*.py")
               if path.name != "__init__.py" or path.parent.name == "cli"}
    named = {path for path in re.findall(r"`([a-z_]+/[a-z_]+\.py)`",
                                         (REPO / "docs" / "design.md").read_text())
             if not path.startswith("tests/")}
    assert modules - named == set(), "docs/design.md does not name these modules"
    assert named - modules == set(), "docs/design.md names modules that do not exist"


def fuzz_cases() -> Counter:
    """The cases of tests/test_fuzz.py, each parametrized one counted, by whether it is slow."""
    import test_fuzz
    cases = Counter()
    tests = {name: test for name, test in vars(test_fuzz).items() if name.startswith("test_")}
    for name, test in tests.items():
        marks = getattr(test, "pytestmark", [])
        parametrized = [mark.args[1] for mark in marks if mark.name == "parametrize"]
        assert len(parametrized) <= 1, name
        slow = any(mark.name == "slow" for mark in marks)
        for value in (parametrized[0] if parametrized else [None]):
            cases[slow or any(mark.name == "slow" for mark in getattr(value, "marks", ()))] += 1
    return cases


def test_errors_md_counts_the_fuzz_cases():
    errors = " ".join((REPO / "docs" / "errors.md").read_text().split())
    cases = fuzz_cases()
    assert f"The default run tries {cases[False]:,} cases" in errors
    assert f"are {cases[True]:,} more" in errors
