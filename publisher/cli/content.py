"""The author's commands: ``init`` a site, ``check`` it, ``build`` its feeds.

``check`` exits 1 on a content or template error (warnings alone exit 0); ``build``
exits 1 when a file was skipped or the feeds could not be written.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher import clock
from publisher.cli.context import settings_of, with_publisher
from publisher.cli.output import err, out, print_takeaways, when
from publisher.content.model import Article, Severity

if TYPE_CHECKING:
    from publisher.app import Publisher
    from publisher.store.ingest import IngestResult


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a starter config.toml and a sample article in DIRECTORY."""
    from publisher.templating import builtin_templates_dir

    starter = builtin_templates_dir() / "init"
    targets = [(src, directory / src.relative_to(starter)) for src in sorted(starter.rglob("*")) if src.is_file()]
    existing = [str(dst) for _, dst in targets if dst.exists()]
    if existing:
        raise click.ClickException(f"not overwriting existing files: {', '.join(existing)}")
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        out.print(f"created {dst}", highlight=False)
    out.print(f"next: cd {directory} && publisher check && publisher run", highlight=False)


@click.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the config, every template and every article; exit 1 if any error (warnings alone exit 0)."""
    from publisher.i18n import language_warning
    from publisher.sources.intake import check_content
    from publisher.mail.client_lint import report
    from publisher.template_check import client_findings, template_problems
    from publisher.templating import make_environment

    settings = settings_of(ctx)
    scans = check_content(settings)  # the settings alone: no database to parse Markdown
    # The config's own warnings (it loaded: they are not errors), then each article's problems.
    config_warnings = [f"{ctx.obj['config']}: warning: {language}"] if (
        language := language_warning(settings.site.language)) else []
    for warning in config_warnings:
        out.print(warning, highlight=False, markup=False)
    problems = [problem for scan in scans for problem in scan.problems]
    for problem in problems:
        out.print(str(problem), highlight=False, markup=False)
    env = make_environment(settings.site.templates_dir, settings.site.language)
    broken_templates = template_problems(settings, env)
    for template_problem in broken_templates:
        out.print(template_problem, highlight=False, markup=False)
    client_warnings, client_note = report(client_findings(settings, env))  # a client without a feature ignores it
    for line in client_warnings + ([client_note] if client_note else []):
        out.print(line, highlight=False, markup=False)
    now = clock.now()
    for article in sorted((a for scan in scans for a in scan.articles if a.published > now), key=_publish_order):
        out.print(f"{article.source_path}: scheduled for {when(article.published)} ({article.id})",
                  highlight=False, markup=False)
    for article in (a for scan in scans for a in scan.articles):
        print_takeaways(article, settings.content.takeaways, f"{article.source_path}: ")
    errors = sum(problem.severity == Severity.ERROR for problem in problems) + len(broken_templates)
    warned = len(problems) + len(broken_templates) - errors + len(client_warnings) + len(config_warnings)
    warnings = f", {warned} warning(s)" if warned else ""
    if errors:
        err.print(f"[red]{errors} error(s)[/red]{warnings}")
        ctx.exit(1)
    out.print(f"config, templates and content OK ({settings.content.dir}){warnings}", highlight=False)


def _regenerated(count: int) -> str:
    """The build line's count of articles stored anew only for new generated takeaways
    ([content] takeaways = "auto"): not edits, but the feeds changed."""
    return f", {count} with new generated takeaways" if count else ""


def _publish_order(article: Article) -> tuple[datetime, str]:
    return article.published, article.id


@click.command()
@click.pass_context
def build(ctx: click.Context) -> None:
    """Ingest the content and write the feeds to [site] output_dir; exit 1 if a file was skipped
    or the feeds could not be written."""

    async def work(publisher: Publisher) -> tuple[IngestResult, str | None]:
        result = await publisher.intake.scan()  # always writes the feeds on a fresh Publisher
        skipped = {problem.path for problem in result.skipped}
        out.print(
            f"{len(result.new)} new, {len(result.updated)} updated, {result.unchanged} unchanged, "
            f"{len(result.scheduled)} scheduled, {len(skipped)} skipped"
            f"{_regenerated(len(result.regenerated))}; "
            f"{len(publisher.shelf.docs)} feeds in {publisher.settings.site.output_dir}",
            highlight=False,
        )
        return result, publisher.shelf.static_files_problem

    result, unwritten = with_publisher(ctx, work)
    for problem in result.skipped:
        err.print(f"skipped: {problem}", highlight=False, markup=False)
    if unwritten is not None:  # writing them is what this command is for
        err.print(unwritten, highlight=False, markup=False)
    if result.skipped or unwritten is not None:
        ctx.exit(1)
