"""The `tracker` command line: orchestration, output and exit codes; the work happens in the stage modules.

Every `TrackerError` becomes a one-line `Error: ...` on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date

import click

from tracker import __version__
from tracker.errors import ConfigError, TrackerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn TrackerError (and a few OS-level failures) into one line on stderr and the error's exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrackerError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; what was stored so far is kept, rerun to continue", err=True)
            sys.exit(130)

    return wrapper


def setup_logging(verbose: int) -> None:
    """-v: INFO (each request), -vv: DEBUG. Logs go to stderr with timestamps."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="tracker")
def cli() -> None:
    """Track multimodal-LLM papers on arXiv: sync into SQLite, tag, digest, explore.

    \b
    Example:
        tracker sync papers.db
        tracker digest papers.db --week 2026-W47
    """


# Commands are added below, grouped by capability. Keep each body short: load, call a module, echo.

# == sync / demo ===============================================================================


def parse_day(value: str | None, option: str) -> date | None:
    """YYYY-MM-DD -> date, or a one-line ConfigError naming the option (no usage dump)."""
    from datetime import date

    from tracker.errors import ConfigError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a valid date (expected YYYY-MM-DD)") from None


def stderr_progress() -> Callable[[str], None]:
    """Progress lines on a terminal (rewritten in place); silent under cron."""
    if not sys.stderr.isatty():
        return lambda message: None
    return lambda message: click.echo(f"\r\033[K{message}", err=True, nl=False)


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--category", "categories", multiple=True, help="arXiv category (repeatable); default: rules/queries.yml")
@click.option("--since", help="Start of the window, YYYY-MM-DD (default: where the last run ended)")
@click.option("--until", help="End of the window, YYYY-MM-DD (default: now)")
@click.option("--api-url", default="https://export.arxiv.org/api/query", show_default=True, help="API query endpoint")
@click.option("--rss-url", default="https://rss.arxiv.org/rss", show_default=True, help="Announcement feed base URL")
@click.option("--no-feed", is_flag=True, help="Skip the announcement feed (API windows only)")
@click.option("--delay", type=click.FloatRange(min=0), default=3.0, show_default=True, help="Seconds between requests")
@click.option("--page-size", type=click.IntRange(1, 2000), default=100, show_default=True, help="Results per API request")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds per request")
@click.option("--retries", type=click.IntRange(0, 10), default=4, show_default=True, help="Retries per request")
@click.option("--backoff", type=click.FloatRange(min=0), default=5.0, show_default=True, help="First retry wait in seconds, doubled each retry (a server's Retry-After wins)")
@click.option("--load", "load", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Ingest a saved Atom page or feed instead of the network (repeatable)")
@click.option("--all", "full", is_flag=True, help="Read whole windows, never stopping early at known papers")
@click.option("--no-classify", is_flag=True, help="Do not tag the new papers")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, help="Seconds to wait for another writer's lock")
@click.option("-v", "--verbose", count=True, help="Log each request (-vv for debug)")
@handle_errors
def sync(db_path, categories, since, until, api_url, rss_url, no_feed, delay, page_size, timeout, retries, backoff, load, full, no_classify, wait, verbose):
    """Pull new arXiv papers into DB_PATH: API windows plus the announcement feed.

    Each run starts where the last complete one ended; an interrupted run is resumed.

    \b
    Example:
        tracker sync papers.db
        tracker sync papers.db --category cs.CV --since 2026-11-01 --until 2026-11-07
        tracker sync papers.db --load saved_page.xml
    """
    from pathlib import Path

    from tracker import store
    from tracker.fetch import PoliteSession
    from tracker.queries import check_categories, load_queries
    from tracker.sync import Syncer, SyncOptions, load_files

    setup_logging(verbose)
    queries = load_queries()
    opts = SyncOptions(
        categories=check_categories(categories) if categories else queries.categories,
        since=parse_day(since, "--since"), until=parse_day(until, "--until"), api_url=api_url,
        rss_url=None if no_feed else rss_url, page_size=page_size,
        overlap_days=queries.overlap_days, initial_days=queries.initial_days, full=full,
    )
    if opts.since and opts.until and opts.since > opts.until:
        raise ConfigError(f"--since {since} is after --until {until}")
    progress = stderr_progress()
    with store.writer_lock(db_path, wait):
        db = store.open_db(db_path)
        if load:
            report = load_files(db, [Path(p) for p in load], progress)
        else:
            session = PoliteSession(delay=delay, timeout=timeout, retries=retries, backoff=backoff)
            report = Syncer(db, session, opts, progress).run()
        if sys.stderr.isatty():
            click.echo("", err=True)
        if not no_classify:
            classify_new(db, db_path, progress)
    click.echo(f"sync {report.status}: {report.summary()}")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False), default="tracker-demo.db")
@handle_errors
def demo(db_path):
    """Run the nightly pipeline offline on a bundled snapshot of real arXiv data.

    A loopback server plays arXiv (API pages and the announcement feed of 2025-08-07); the
    ordinary sync reads it over HTTP, then the classifier tags what arrived.

    \b
    Example:
        tracker demo
        tracker demo /tmp/demo.db
    """
    from tracker import store
    from tracker.demo import run_demo_sync

    progress = stderr_progress()
    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        result = run_demo_sync(db, progress)
        if sys.stderr.isatty():
            click.echo("", err=True)
        click.echo(f"sync {result.report.status}: {result.report.summary()} (loopback arXiv at {result.api_url})")
        classify_new(db, db_path, progress)
        counts = store.table_counts(db)
    click.echo(f"\n{db_path} now holds:")
    for table, n in counts.items():
        click.echo(f"  {table:16} {n:>7,}")
    click.echo(
        "\nNext, try:\n"
        f"  sqlite-utils search {db_path} papers 'visual instruction tuning' -c title --limit 5\n"
        f"  tracker explain {db_path} <arxiv_id>\n"
        f"  tracker digest {db_path} --since 2025-08-01 --until 2025-08-07\n"
        f"  tracker serve {db_path}\n"
        f"  tracker status {db_path}"
    )


def classify_new(db, db_path, progress) -> None:
    """Tag what the sync stored (tracker.classify trains a model first if there is none)."""
    try:
        from tracker.classify import run_classify
    except ImportError:  # the classifier is optional while it is being built
        return
    report = run_classify(db, db_path, progress=lambda n: progress(f"classified {n} papers"))
    click.echo(f"classify: {report.papers} papers, {report.tagged} tagged (model {report.model_id[:12]})")


# == classification =============================================================================


def _rules_and_labels(labels_file=None):
    from tracker.config import rules_dir
    from tracker.rules import load_labels, load_taxonomy

    rules = rules_dir()
    taxonomy = load_taxonomy(rules / "taxonomy.yml")
    return taxonomy, load_labels(labels_file or rules / "labels.csv", taxonomy)


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@handle_errors
def train(db_path):
    """Train the taxonomy classifier from rules/labels.csv plus the database's manual labels.

    Saves DB_PATH's model (`<db>.classifier.skops`) and its sidecar (`<db>.classifier.json`: versions,
    label hash, cross-validated scores per tag).

    \b
    Example:
        tracker train papers.db
    """
    from tracker import classify, store

    taxonomy, labels = _rules_and_labels()
    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        click.echo("training (cross-validating thresholds)...", err=True)
        report = classify.train_from_db(db, db_path, taxonomy, labels)
    click.echo(classify.render_train(report))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--all", "all_papers", is_flag=True, help="Re-tag every paper, not only those the current model has not seen.")
@handle_errors
def classify(db_path, all_papers):
    """Tag papers not yet tagged by the current model (trains one first if there is none).

    \b
    Example:
        tracker classify papers.db
        tracker classify papers.db --all
    """
    from tracker import classify as classifier
    from tracker import store

    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        done = [0]

        def progress(n):
            done[0] += n
            click.echo(f"classified {done[0]} papers", err=True)

        report = classifier.run_classify(db, db_path, all_papers=all_papers, progress=progress)
    trained = " (trained a new model first)" if report.trained else ""
    click.echo(f"classify: {report.papers} papers, {report.tagged} tagged (model {report.model_id}){trained}")


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False, exists=True))
@click.argument("arxiv_id")
@click.argument("tag")
@click.option("--remove", is_flag=True, help="Record that the paper does NOT carry TAG.")
@handle_errors
def label(db_path, arxiv_id, tag, remove):
    """Correct a paper's tags by hand: kept across retrains and used by the next `train`.

    \b
    Example:
        tracker label papers.db 2304.08485 MIT
        tracker label papers.db 2304.08485 evaluation --remove
    """
    from tracker import store
    from tracker.errors import ConfigError as _ConfigError

    taxonomy, _ = _rules_and_labels()
    found = taxonomy.resolve(tag)
    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        if not store.paper_exists(db, arxiv_id):
            raise _ConfigError(f"{arxiv_id}: no such paper in {db_path}")
        store.save_manual_label(db, arxiv_id, found.slug, found.facet, "remove" if remove else "add")
    click.echo(f"{arxiv_id}: {'removed' if remove else 'added'} {found.slug} (manual)")


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False, exists=True))
@click.argument("arxiv_id")
@handle_errors
def explain(db_path, arxiv_id):
    """Show why a paper carries each tag: scores, thresholds, terms, rules and named systems.

    \b
    Example:
        tracker explain papers.db 2304.08485
    """
    from tracker import classify, store

    db = store.open_db(db_path)
    click.echo(classify.render_explanation(classify.explain(db, db_path, arxiv_id)))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="A labelled CSV (arxiv_id,tags) to cross-validate on instead of rules/labels.csv.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def evaluate(db_path, labels_file, as_json):
    """Cross-validate the classifier and two baselines: precision, recall, F1 per tag, stream share.

    \b
    Example:
        tracker evaluate papers.db
        tracker evaluate papers.db --labels my_labels.csv --json
    """
    import json as _json
    from pathlib import Path

    from tracker import classify, store

    taxonomy, labels = _rules_and_labels(Path(labels_file) if labels_file else None)
    db = store.open_db(db_path)
    data = classify.training_set(labels, store.manual_labels(db), lambda ids: store.paper_texts(db, ids))
    report = classify.evaluate(taxonomy, data, progress=lambda s: click.echo(s, err=True))
    click.echo(_json.dumps(report, indent=2) if as_json else classify.render_evaluation(report))


# == digest / schedule / status =================================================================

# == datasette / export ==========================================================================

# == backfill ====================================================================================

