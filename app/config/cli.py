"""``passgate config``: the effective settings (secrets masked); ``config check``: validate."""

from __future__ import annotations

import os
from pathlib import Path

import click
from dotenv import dotenv_values

from app.config.deployment import deployment_problems, unknown_variables
from app.config.problems import SettingsError
from app.config.show import settings_lines
from app.settings import Settings, get_settings


def _environment() -> dict[str, str]:
    """The variables the settings were read from: the process environment over ``.env``."""
    env_file = Settings.model_config.get("env_file")
    found: dict[str, str] = {}
    if isinstance(env_file, str) and Path(env_file).is_file():
        found.update({k: v or "" for k, v in dotenv_values(env_file, encoding="utf-8").items()})
    return found | dict(os.environ)


@click.group(invoke_without_command=True)
@click.pass_context
def config(ctx: click.Context) -> None:
    """Print the effective settings, secrets masked (defaults marked `# default`)."""
    if ctx.invoked_subcommand is None:
        for line in settings_lines(get_settings()):
            click.echo(line)


@config.command("check")
def check() -> None:
    """Validate every setting; one line per problem on stderr, exit status 2 on any."""
    settings = get_settings()
    problems = deployment_problems(settings)
    problems += unknown_variables(_environment(), Settings.model_fields)
    if problems:
        raise SettingsError(problems)
    set_here = sorted(settings.model_fields_set)
    click.echo(f"settings OK: environment {settings.environment}, "
               f"{len(set_here)} of {len(Settings.model_fields)} set")
