"""The `tracker` command line: orchestration, output and exit codes; the work happens in the stage modules.

Every `TrackerError` becomes a one-line `Error: ...` on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from tracker import __version__
from tracker.endpoints import (
    DEADLINE_TIMEOUTS,
    DEFAULT_API_URL,
    DEFAULT_BACKOFF,
    DEFAULT_DELAY,
    DEFAULT_OAI_TIMEOUT,
    DEFAULT_OAI_URL,
    DEFAULT_RETRIES,
    DEFAULT_RSS_URL,
    DEFAULT_TIMEOUT,
)
from tracker.errors import ConfigError, ModelError, TrackerError
from tracker.progress import for_terminal, status_line

if TYPE_CHECKING:
    from pathlib import Path

    from sqlite_utils import Database

    from tracker.digest import DigestTaxonomy
    from tracker.rules import Labels, Taxonomy
    from tracker.store import ReviewCandidate

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
LOCAL_DATASETTE = "http://127.0.0.1:8001"  # where `tracker serve` listens by default


class Seconds(click.FloatRange):
    """A bounded number of seconds. FloatRange alone lets `nan` through (it compares false with both bounds)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


class ArxivId(click.ParamType):
    """An arXiv id as people paste it (`2506.04039v2`, `arXiv:2506.04039`, an abs or PDF link): the bare id."""

    name = "arxiv_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from tracker.ids import parse_arxiv_id

        found = parse_arxiv_id(str(value))
        if found is None:
            self.fail(
                f"{value!r} is not an arXiv id (like 2506.04039, arXiv:2506.04039v2 or an arxiv.org link)",
                param,
                ctx,
            )
        return found


# Shared options, as decorators (the pattern of sqlite-utils' cli.py). Defaults come from the library's
# constants, so the CLI and a caller of PoliteSession get the same politeness.
SECONDS = Seconds(min=0, max=86400)
POSITIVE_SECONDS = Seconds(min=0.1, max=86400)
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def window_options() -> Decorator:
    """--week, or --since/--until: the window of papers a digest or a ranking covers."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--until", help="Last day of a custom window, YYYY-MM-DD (inclusive)")(func)
        func = click.option("--since", help="First day of a custom window, YYYY-MM-DD")(func)
        return click.option("--week", help="ISO week, e.g. 2026-W47 (default: the last complete week)")(func)

    return decorate


def wait_option(default: float = 0.0, help: str = "Seconds to wait for another writer's lock") -> Decorator:
    """--wait SECONDS: how long a writer waits for another writer's lock."""
    return click.option("--wait", type=SECONDS, default=default, show_default=bool(default), help=help)


def verbose_option(help: str = "Log each request (-vv for debug)") -> Decorator:
    """-v/--verbose, counted: -v for INFO, -vv for DEBUG (see setup_logging)."""
    return click.option("-v", "--verbose", count=True, help=help)


def delay_option(default: float = DEFAULT_DELAY) -> Decorator:
    return click.option(
        "--delay", type=SECONDS, default=default, show_default=True, help="Seconds between requests"
    )


def timeout_option(default: float = DEFAULT_TIMEOUT) -> Decorator:
    return click.option(
        "--timeout", type=POSITIVE_SECONDS, default=default, show_default=True, help="Seconds per request"
    )


def retries_option() -> Decorator:
    return click.option(
        "--retries",
        type=click.IntRange(0, 10),
        default=DEFAULT_RETRIES,
        show_default=True,
        help="Retries per request",
    )


def backoff_option() -> Decorator:
    return click.option(
        "--backoff",
        type=SECONDS,
        default=DEFAULT_BACKOFF,
        show_default=True,
        help="First retry wait in seconds, doubled each retry (a server's Retry-After wins)",
    )


def deadline_option() -> Decorator:
    return click.option(
        "--deadline",
        type=POSITIVE_SECONDS,
        help=f"Seconds one request may take in all, body included (default: {DEADLINE_TIMEOUTS} x --timeout)",
    )


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn TrackerError, OSError and sqlite3.Error into one line on stderr and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a full disk or closed pipe behind `> file` is an error, not a success
            return result
        except TrackerError as exc:
            click.echo(f"Error: {exc}{lock_advice(exc)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; what was stored so far is kept, rerun to continue", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `tracker export ... | head`: the reader stopped, nothing to report
            with contextlib.suppress(OSError):
                sys.stdout.close()
            sys.exit(141)  # what a shell shows for a process ended by SIGPIPE
        except OSError as exc:  # a file or folder the user named cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            try:
                sys.stdout.flush()
            except OSError:  # stdout itself failed: close it so Python's exit does not report it again
                with contextlib.suppress(OSError):
                    sys.stdout.close()
            sys.exit(1)
        except sqlite3.OperationalError as exc:  # read-only file, disk full, I/O error: not a bug of ours
            click.echo(f"Error: database: {exc}; the current transaction was rolled back", err=True)
            sys.exit(1)

    return wrapper


def lock_advice(exc: TrackerError) -> str:
    """ ", or pass --wait SECONDS" after a locked-database error, only from a command that has that option."""
    from tracker.errors import LockedError

    ctx = click.get_current_context(silent=True)
    has_wait = ctx is not None and any(p.name == "wait" for p in ctx.command.params)
    return ", or pass --wait SECONDS" if isinstance(exc, LockedError) and has_wait else ""


def existing(db_path: str) -> str:
    """DB_PATH for commands that work on a database: only sync, backfill, demo and evaluate create one."""
    from tracker import store

    store.require_database(db_path)
    return db_path


def database_files(db_path: str) -> list[str]:
    """The database and its companion files: what an --out FILE must never replace."""
    from tracker.config import lock_path, model_paths
    from tracker.outfile import database_files as companions

    return companions(db_path, [lock_path(db_path), *model_paths(db_path)])


def setup_logging(verbose: int) -> None:
    """-v: INFO (each request), -vv: DEBUG. Logs go to stderr with timestamps."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    # tracker.fetch logs every request it makes; the arxiv package's own "Requesting page" line for the same
    # request would say it twice at -v, so that package speaks only at -vv.
    logging.getLogger("arxiv").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


class OneLineErrors(click.Group):
    """click's usage errors print usage, a hint and a blank line before the error; ours say it in one line."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            # Not standalone: click raises its errors to us instead of printing them, and returns the exit
            # code of --help/--version (commands exit non-zero with sys.exit themselves).
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `tracker`: the help, as click prints it
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "tracker"
            click.echo(f"Error: {exc.format_message()} (see: {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if type(result) is int else 0)


@click.group(cls=OneLineErrors, context_settings=CONTEXT_SETTINGS)
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


def terminal_notice() -> Callable[[str], None] | None:
    """Where the network layer says what it is waiting for: a line of its own on a terminal, nothing under cron."""
    if not sys.stderr.isatty():
        return None
    return lambda message: click.echo(f"\r\033[K{message}", err=True)


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--category", "categories", multiple=True, help="arXiv category (repeatable); default: rules/queries.yml"
)
@click.option("--since", help="Start of the window, YYYY-MM-DD (default: where the last run ended)")
@click.option("--until", help="End of the window, YYYY-MM-DD (default: now)")
@click.option("--api-url", default=DEFAULT_API_URL, show_default=True, help="API query endpoint")
@click.option("--rss-url", default=DEFAULT_RSS_URL, show_default=True, help="Announcement feed base URL")
@click.option("--no-feed", is_flag=True, help="Skip the announcement feed (API windows only)")
@delay_option()
@click.option(
    "--page-size",
    type=click.IntRange(1, 2000),
    default=100,
    show_default=True,
    help="Results per API request",
)
@timeout_option()
@retries_option()
@deadline_option()
@backoff_option()
@click.option(
    "--load",
    "load",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Ingest a saved Atom page or feed instead of the network (repeatable)",
)
@click.option(
    "--all", "all_papers", is_flag=True, help="Read whole windows, never stopping early at known papers"
)
@click.option("--no-classify", is_flag=True, help="Do not tag the new papers")
@wait_option()
@verbose_option()
@handle_errors
def sync(
    db_path: str,
    categories: tuple[str, ...],
    since: str | None,
    until: str | None,
    api_url: str,
    rss_url: str,
    no_feed: bool,
    delay: float,
    page_size: int,
    timeout: float,
    retries: int,
    deadline: float | None,
    backoff: float,
    load: tuple[str, ...],
    all_papers: bool,
    no_classify: bool,
    wait: float,
    verbose: int,
) -> None:
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
    from tracker.dates import parse_day
    from tracker.fetch import PoliteSession
    from tracker.queries import check_categories, load_queries
    from tracker.sync import Syncer, SyncOptions, load_files

    setup_logging(verbose)
    queries = load_queries()
    opts = SyncOptions(
        categories=check_categories(categories) if categories else queries.categories,
        since=parse_day(since, "--since"),
        until=parse_day(until, "--until"),
        api_url=api_url,
        rss_url=None if no_feed else rss_url,
        page_size=page_size,
        overlap_days=queries.overlap_days,
        initial_days=queries.initial_days,
        all_papers=all_papers,
    )
    if opts.since and opts.until and opts.since > opts.until:
        raise ConfigError(f"--since {since} is after --until {until}")
    progress = status_line()
    with store.writer_lock(db_path, wait):
        db = store.open_db(db_path)
        if load:
            report = load_files(db, [Path(p) for p in load], progress)
        else:
            session = PoliteSession(
                delay=delay,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                deadline=deadline,
                url_options={api_url: "--api-url", rss_url: "--rss-url"},
                notify=terminal_notice(),
            )
            report = Syncer(db, session, opts, progress).run()
        if sys.stderr.isatty():
            click.echo("", err=True)
        if not no_classify:
            classify_new(db, db_path)
    click.echo(f"sync {report.status}: {report.summary()}")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False), default="tracker-demo.db")
@handle_errors
def demo(db_path: str) -> None:
    """Run the nightly pipeline offline on a bundled snapshot of real arXiv data.

    A loopback server plays arXiv (API pages and the announcement feed of 2025-08-07); the
    ordinary sync reads it over HTTP, then the classifier tags what arrived.

    \b
    Example:
        tracker demo
        tracker demo /tmp/demo.db
    """
    from tracker import store
    from tracker.demo import render_tour, run_demo_sync

    progress = status_line()
    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        result = run_demo_sync(db, progress)
        if sys.stderr.isatty():
            click.echo("", err=True)
        click.echo(
            f"sync {result.report.status}: {result.report.summary()} (loopback arXiv at {result.api_url})"
        )
        classify_new(db, db_path)
        tour = render_tour(db_path, store.table_counts(db), store.strongest_tagged(db))
    click.echo(tour, nl=False)


def classify_new(db: Database, db_path: str) -> None:
    """Tag what the sync stored (tracker.classify trains a model first if there is none)."""
    try:
        from tracker.classify import run_classify
    except ImportError as exc:
        # A broken install (scikit-learn missing, a module of the package gone) must fail the nightly run:
        # swallowing it let sync report ok every night with nothing tagged.
        raise ModelError(
            f"the classifier cannot be imported: module {exc.name or exc} is missing; "
            "reinstall the tracker and its dependencies: pip install -e ."
        ) from None
    bar, near = for_terminal("classify", unit="papers"), for_terminal("similar", unit="papers")
    report = run_classify(db, db_path, progress=bar, similar_progress=near)
    for shown in (bar, near):
        if shown:
            shown.close()
    click.echo(
        f"classify: {report.papers} papers, {report.tagged} tagged, {report.neighbours} with new similar "
        f"papers (model {report.model_id[:12]})"
    )


# == classification =============================================================================


def _rules_and_labels(labels_file: Path | None = None) -> tuple[Taxonomy, Labels]:
    from tracker.config import rules_dir
    from tracker.rules import load_labels, load_taxonomy

    rules = rules_dir()
    taxonomy = load_taxonomy(rules / "taxonomy.yml")
    return taxonomy, load_labels(labels_file or rules / "labels.csv", taxonomy)


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@handle_errors
def train(db_path: str) -> None:
    """Train the taxonomy classifier from rules/labels.csv plus the database's manual labels.

    Saves DB_PATH's model (`<db>.classifier.skops`) and its sidecar (`<db>.classifier.json`: versions,
    label hash, cross-validated scores per tag).

    \b
    Example:
        tracker train papers.db
    """
    existing(db_path)
    from tracker import classify, store

    taxonomy, labels = _rules_and_labels()
    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        click.echo("training (cross-validating thresholds)...", err=True)
        report = classify.train_from_db(db, db_path, taxonomy, labels)
    click.echo(classify.render_train(report))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--all",
    "all_papers",
    is_flag=True,
    help="Re-tag every paper, not only those the current model has not seen.",
)
@handle_errors
def classify(db_path: str, all_papers: bool) -> None:
    """Tag papers not yet tagged by the current model (trains one first if there is none).

    \b
    Example:
        tracker classify papers.db
        tracker classify papers.db --all
    """
    existing(db_path)
    from tracker import classify as classifier
    from tracker import store

    with store.writer_lock(db_path):
        db = store.open_db(db_path)
        bar, near = for_terminal("classify", unit="papers"), for_terminal("similar", unit="papers")
        report = classifier.run_classify(
            db, db_path, all_papers=all_papers, progress=bar, similar_progress=near
        )
        for shown in (bar, near):
            if shown:
                shown.close()
    trained = " (trained a new model first)" if report.trained else ""
    click.echo(
        f"classify: {report.papers} papers, {report.tagged} tagged, {report.neighbours} with new similar "
        f"papers (model {report.model_id}){trained}"
    )


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("arxiv_id", type=ArxivId())
@click.argument("tag")
@click.option("--remove", is_flag=True, help="Record that the paper does NOT carry TAG.")
@handle_errors
def label(db_path: str, arxiv_id: str, tag: str, remove: bool) -> None:
    """Correct a paper's tags by hand: kept across retrains and used by the next `train`.

    Judge by the labelling guide the training labels were made with, docs/labelling.md (a tag is right
    when it is the paper's main subject, not when a word appears). `tracker review` offers the papers
    where an answer teaches the model most.

    \b
    Example:
        tracker label papers.db 2304.08485 MIT
        tracker label papers.db 2304.08485 evaluation --remove
    """
    existing(db_path)
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


def answer_reader() -> Callable[[str], str]:
    """Ask for review answers: a prompt on a terminal; else one line of standard input per answer, echoed.

    Ctrl-C on a terminal and the end of piped input both raise EOFError, which ends the review.
    """
    if sys.stdin.isatty():

        def prompt(text: str) -> str:
            try:
                return str(click.prompt(text, prompt_suffix=" "))
            except click.Abort:
                click.echo()
                raise EOFError from None

        return prompt

    def piped(text: str) -> str:
        click.echo(f"{text} ", nl=False)
        line = sys.stdin.readline()
        click.echo(line.strip())  # so the transcript shows what was answered
        if not line:
            raise EOFError
        return line

    return piped


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--tag", help="Only this tag (slug, e.g. MIT); default: every tag the model scores, interleaved"
)
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=20, show_default=True, help="Papers to offer at most"
)
@wait_option(60.0, "Seconds each answer waits for another writer's lock")
@handle_errors
def review(db_path: str, tag: str | None, limit: int, wait: float) -> None:
    """Label the papers the model is least sure of, one at a time: y(es), n(o), s(kip) or q(uit).

    Offers the papers whose score for a tag lies nearest the tag's threshold (where one answer teaches
    the model most), with their title, abstract and current tags. Judge them by the rubric in
    docs/labelling.md. Each y/n is stored at once as a manual label, like `tracker label`: it wins
    over the model, survives retraining and is learnt by the next `tracker train`. A paper labelled by
    hand for the tag is not offered again. Any other answer is asked again (with piped input, the
    next line answers); the end of input quits.

    \b
    Example:
        tracker review papers.db --tag MIT
        tracker review papers.db --limit 50
        printf 'y\\nn\\ns\\nq\\n' | tracker review papers.db --tag hallucination
    """
    from tracker import review as review_mod
    from tracker import store
    from tracker.config import rules_dir
    from tracker.rules import load_taxonomy

    db = store.open_existing(db_path)
    taxonomy = load_taxonomy(rules_dir() / "taxonomy.yml")
    slug = taxonomy.resolve(tag).slug if tag else None
    candidates = store.review_candidates(db, [slug] if slug else taxonomy.slugs, limit)
    if not candidates:
        click.echo(review_mod.nothing_to_review(slug, store.scored_tags(db), db_path))
        return
    facets = {t.slug: t.facet for t in taxonomy.tags}

    def save(c: ReviewCandidate, action: str) -> None:
        with store.writer_lock(db_path, wait):
            store.save_manual_label(db, c.arxiv_id, c.tag, facets[c.tag], action)

    counts = review_mod.review(candidates, answer_reader(), click.echo, save)
    click.echo(counts.summary(db_path))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("arxiv_id", type=ArxivId())
@handle_errors
def explain(db_path: str, arxiv_id: str) -> None:
    """Show why a paper carries each tag: scores, thresholds, terms, rules and named systems.

    \b
    Example:
        tracker explain papers.db 2304.08485
    """
    existing(db_path)
    from tracker import classify, store

    db = store.open_readonly(db_path)
    click.echo(classify.render_explanation(classify.explain(db, db_path, arxiv_id)))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A labelled CSV (arxiv_id,tags) to cross-validate on instead of rules/labels.csv.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def evaluate(db_path: str, labels_file: str | None, as_json: bool) -> None:
    """Cross-validate the classifier and two baselines: precision, recall, F1 per tag, relevance score.

    Every paper is scored by a model trained without it (5 folds). The labels are rules/labels.csv
    (built from rules/reviewed.csv) plus the database's manual labels; the bundled corpus papers nobody
    labelled are the negatives. Takes about a minute on the bundled data.

    \b
    Example:
        tracker evaluate papers.db
        tracker evaluate papers.db --labels my_labels.csv --json
    """
    import json as _json
    from pathlib import Path

    from tracker import classify, store

    taxonomy, labels = _rules_and_labels(Path(labels_file) if labels_file else None)
    # Only read: a database adds its manual labels; a path with none yet is no reason to create one.
    db = store.open_readonly(db_path) if Path(db_path).exists() else None
    data = classify.training_data(db, taxonomy, labels)
    report = classify.evaluate(taxonomy, data, progress=lambda s: click.echo(s, err=True))
    click.echo(_json.dumps(report, indent=2) if as_json else classify.render_evaluation(report))


# == digest / schedule / status =================================================================


def load_digest_taxonomy(db: Database) -> DigestTaxonomy:
    """rules/taxonomy.yml as the digest needs it; without one, the tags the database holds."""
    from tracker import digest, rules, store
    from tracker.config import rules_dir

    path = rules_dir() / "taxonomy.yml"
    if path.exists():
        return digest.taxonomy_from_rules(rules.load_taxonomy(path))
    return digest.taxonomy_from_pairs(store.stored_tags(db))


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@window_options()
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Write the message (.eml) or the HTML page (.html)"
)
@click.option("--send", is_flag=True, help="Email it over SMTP (to --to, else to every subscriber)")
@click.option("--to", "to", multiple=True, help="Recipient address (repeatable); default: the subscribers")
@click.option("--smtp-host", help="SMTP server (else auth.json smtp_host, else TRACKER_SMTP_HOST)")
@click.option("--smtp-port", type=click.IntRange(1, 65535), help="SMTP port (default 587, 465 with --ssl)")
@click.option("--starttls", "security", flag_value="starttls", help="Upgrade with STARTTLS (the default)")
@click.option("--ssl", "security", flag_value="ssl", help="Connect with implicit TLS")
@click.option("--plain", "security", flag_value="plain", help="No TLS (loopback relays only with a password)")
@click.option("--smtp-user", help="SMTP login; the password comes from auth.json or TRACKER_SMTP_PASSWORD")
@click.option("--from", "sender", help="Sender address (else auth.json smtp_from, else the SMTP user)")
@click.option("--resend", is_flag=True, help="Send again even if this window already reached the recipient")
@click.option(
    "--skip-empty", is_flag=True, help="Send nothing (rather than a short note) when nothing is new"
)
@click.option(
    "--max-per-tag", type=click.IntRange(1, 1000), default=20, show_default=True, help="Papers listed per tag"
)
@click.option(
    "--all-tasks",
    is_flag=True,
    help="List every paper under the classic vision task tags, not only MLLM work",
)
@click.option(
    "--datasette-url",
    envvar="TRACKER_DATASETTE_URL",
    help="Where readers reach `tracker serve`, for each paper's 'similar papers' link in the HTML (env "
    "TRACKER_DATASETTE_URL). Default: no links in mail (--send), http://127.0.0.1:8001 in a file or print",
)
@wait_option()
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (reproducible output)")
@handle_errors
def digest(
    db_path: str,
    week: str | None,
    since: str | None,
    until: str | None,
    out: str | None,
    send: bool,
    to: tuple[str, ...],
    smtp_host: str | None,
    smtp_port: int | None,
    security: str | None,
    smtp_user: str | None,
    sender: str | None,
    resend: bool,
    skip_empty: bool,
    max_per_tag: int,
    all_tasks: bool,
    datasette_url: str | None,
    wait: float,
    now: str | None,
) -> None:
    """Build the weekly digest of your tags: print it, write it to a file, or email it.

    Each (recipient, week) is sent once: a rerun sends nothing, a failed send is retried by the
    next run, and a paper a recipient already got comes back only when it is revised.

    Sections run MLLM kind, topic, paradigm, architecture, then the classic vision tasks, whose
    sections list only papers the relevance score calls multimodal-LLM work (unless --all-tasks,
    or the recipient subscribed to that task tag by name).

    \b
    Example:
        tracker digest papers.db --week 2026-W47
        tracker digest papers.db --out digest.html
        tracker subscribe papers.db me@example.org --tag hallucination
        TRACKER_SMTP_PASSWORD=... tracker digest papers.db --send --smtp-host smtp.example.org --smtp-user me@example.org
    """
    existing(db_path)
    from tracker import config, mail, store
    from tracker.dates import parse_now
    from tracker.delivery import DigestSource, deliver_digests, write_digest_file
    from tracker.digest import window_from_options
    from tracker.errors import MailError
    from tracker.outfile import replacing

    moment = parse_now(now)
    window = window_from_options(week, since, until, moment.date())
    addresses = [mail.check_address(a, "--to") for a in to]
    if send and out:
        raise ConfigError("--out writes a file and --send emails: use one at a time")
    # Printing or writing a file only reads: it works on a database the user cannot write.
    db = store.open_db(db_path) if send else store.open_readonly(db_path)
    subscribers = dict(store.list_subscribers(db))
    source = DigestSource(
        db,
        load_digest_taxonomy(db),
        window,
        moment,
        max_per_tag,
        all_tasks,
        db_path,
        # A loopback address means nothing to a reader's mail client: mail gets links only when told where.
        datasette_url=(datasette_url if datasette_url is not None else None if send else LOCAL_DATASETTE)
        or None,
        readers=True,
        save_models=send,
    )
    if not send:
        reader = addresses[0] if addresses else None
        d = source.build(subscribers.get(reader, []) if reader else (), reader=reader)
        if d.empty and skip_empty:
            click.echo(f"{window.label}: nothing new in your tags", err=True)
        elif out:
            with replacing(out, database_files(db_path)) as tmp:
                write_digest_file(source, d, str(tmp), sender, addresses[0] if addresses else None)
            click.echo(f"wrote {window.label} ({d.paper_count} papers) to {out}", err=True)
        else:
            click.echo(source.text(d), nl=False)
        return
    smtp = mail.smtp_settings(
        config.load_auth(), host=smtp_host, port=smtp_port, security=security, user=smtp_user, sender=sender
    )
    recipients = [(a, subscribers.get(a, [])) for a in addresses] or list(subscribers.items())
    if not recipients:
        raise ConfigError("no recipients: pass --to EMAIL or add one with `tracker subscribe`")
    with store.writer_lock(db_path, wait):
        failed = deliver_digests(
            db,
            config.outbox_dir(db_path),
            source,
            recipients,
            smtp,
            resend=resend,
            skip_empty=skip_empty,
            report=lambda line: click.echo(line, err=True),
        )
    if failed:
        raise MailError(
            f"{len(failed)} of {len(recipients)} digests for {window.label} failed ({', '.join(failed)}); "
            "recorded as failed, the next run retries them"
        )


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("email")
@click.option("--tag", "tags", multiple=True, help="Only this tag (repeatable); default: every tag")
@click.option(
    "--library",
    "library_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Your own papers (BibTeX, Zotero CSV, RIS, or arXiv ids/URLs a line): the digest opens with "
    "a 'For you' section ranked by them; again to replace it",
)
@click.option("--offline", is_flag=True, help="Do not fetch library papers missing from the database")
@click.option("--api-url", default=DEFAULT_API_URL, show_default=True, help="API endpoint for missing papers")
@delay_option()
@timeout_option()
@retries_option()
@wait_option()
@handle_errors
def subscribe(
    db_path: str,
    email: str,
    tags: tuple[str, ...],
    library_file: str | None,
    offline: bool,
    api_url: str,
    delay: float,
    timeout: float,
    retries: int,
    wait: float,
) -> None:
    """Subscribe EMAIL to the weekly digest (all tags, or those given); rerun to change the tags.

    With --library, papers of the file missing from the database are fetched from arXiv by id
    (--offline: not), and entries that name no paper are listed with their line; a rerun with only
    --library replaces the library and keeps the tags. The library is private: `tracker serve` and
    `public-copy` never show it.

    \b
    Example:
        tracker subscribe papers.db me@example.org
        tracker subscribe papers.db me@example.org --tag hallucination --tag evaluation
        tracker subscribe papers.db me@example.org --library ~/Zotero/export.bib
    """
    existing(db_path)
    from pathlib import Path

    from tracker import mail, readers, store
    from tracker.config import model_paths
    from tracker.library import read_library
    from tracker.parse import PaperRow

    email = mail.check_address(email)
    # A bad file or tag fails here, before anything is fetched or stored.
    library = read_library(Path(library_file)) if library_file else None
    load_digest_taxonomy(store.open_readonly(db_path)).validate(tags)
    fetched: list[PaperRow] = []
    if library and not offline:
        # Fetched before the writer lock is taken: a slow arXiv must not make the nightly sync wait.
        from tracker.fetch import PoliteSession

        missing = readers.resolve(store.open_readonly(db_path), library)
        session = PoliteSession(
            delay=delay, timeout=timeout, retries=retries, url_options={api_url: "--api-url"}
        )
        fetched = readers.fetch_missing(missing, session, api_url, report=lambda m: click.echo(m, err=True))
    with store.writer_lock(db_path, wait):
        db = store.open_db(db_path)
        current = dict(store.list_subscribers(db)).get(email)
        # A new library alone keeps the tags the reader chose; --tag (or a plain subscribe) sets them.
        chosen = (
            current
            if library and not tags and current is not None
            else load_digest_taxonomy(db).validate(tags)
        )
        if fetched:
            with db.atomic():
                store.save_papers(db, fetched)
            if model_paths(db_path)[0].exists():  # else the nightly classify tags them (no training here)
                classify_new(db, db_path)
        resolved = readers.resolve(db, library, {p["arxiv_id"] for p in fetched}) if library else []
        with db.atomic():  # the subscriber and their library together, or neither
            new = store.save_subscriber(db, email, chosen)
            if library:
                store.save_library(db, email, [r.row() for r in resolved])
        if library:
            fit_reader_model(db, db_path, email)
    click.echo(f"{'subscribed' if new else 'updated'} {email}: {', '.join(chosen) or 'all tags'}")
    if library:
        click.echo(f"library {library_file}: {readers.summary(library, resolved)}")
        for line in readers.problems(resolved):
            click.echo(f"  {line}", err=True)


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("arxiv_id", type=ArxivId())
@click.option(
    "--limit", type=click.IntRange(1, 10), default=10, show_default=True, help="Papers to list (10 are kept)"
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (arxiv_id, title, score)")
@handle_errors
def similar(db_path: str, arxiv_id: str, limit: int, as_json: bool) -> None:
    """List the papers nearest to ARXIV_ID by TF-IDF cosine, closest first (kept by sync and classify).

    \b
    Example:
        tracker similar papers.db 2506.04039
        tracker similar papers.db https://arxiv.org/abs/2506.04039v2 --limit 5 --json
    """
    existing(db_path)
    import json
    import shlex

    from tracker import store

    db = store.open_readonly(db_path)
    if not store.paper_exists(db, arxiv_id):
        raise ConfigError(f"{arxiv_id} is not in {db_path}")
    rows = store.similar_to(db, arxiv_id, limit)
    if not rows:
        raise ConfigError(
            f"{arxiv_id} has no similar papers yet (no abstract, or not classified): "
            f"run tracker classify {shlex.quote(db_path)}"
        )
    if as_json:
        click.echo(
            json.dumps([{**r, "score": round(r["score"], 4)} for r in rows], indent=2, ensure_ascii=False)
        )
        return
    for r in rows:
        click.echo(f"{r['score']:.3f}  {r['arxiv_id']:<16}  {r['title']}")


def fit_reader_model(db: Database, db_path: str, email: str) -> None:
    """Fit and store the reader's ranking model now, so the weekly digest only scores (skipped while the
    database has no classifier, hence no paper vectors: the digest fits it later)."""
    from tracker.recommend import Vocabulary

    with contextlib.suppress(ModelError):
        Vocabulary.of(db, db_path).reader(email, save=True)


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON array")
@handle_errors
def library(db_path: str, email: str, as_json: bool) -> None:
    """Show what was understood of EMAIL's library: each entry, its line and the paper it names.

    \b
    Example:
        tracker library papers.db me@example.org
    """
    existing(db_path)
    import json
    import shlex

    from tracker import store

    db = store.open_readonly(db_path)
    rows = store.library_rows(db, email.strip())
    if not rows:
        known = any(e == email.strip() for e, _ in store.list_subscribers(db))
        again = f"tracker subscribe {shlex.quote(db_path)} {email} --library FILE"
        raise ConfigError(
            f"{email} has no library; add one: {again}" if known else f"{email} is not subscribed"
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        shown = r["title"] or r["entry"]
        click.echo(f"line {r['line']:>5}  {r['status']:<9}  {r['arxiv_id'] or '-':<18}  {shown}")
    kinds = ", ".join(f"{n} {s}" for s, n in Counter(r["status"] for r in rows).items())
    click.echo(f"{len(rows)} entries: {kinds}", err=True)


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--library",
    "library_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Rank by this library file (matched offline against the database)",
)
@click.option("--for", "email", metavar="EMAIL", help="Rank for this subscriber's stored library")
@window_options()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Papers to list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (arxiv_id, title, score, like)")
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time")
@handle_errors
def recommend(
    db_path: str,
    library_file: str | None,
    email: str | None,
    week: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
    now: str | None,
) -> None:
    """Rank a week's papers for a reader by their own library, each with the library paper it is most like.

    \b
    Example:
        tracker recommend papers.db --for me@example.org
        tracker recommend papers.db --library my.bib --week 2026-W47 --limit 50 --json
    """
    existing(db_path)
    import json
    import shlex
    from pathlib import Path

    from tracker import readers, recommend, store
    from tracker.dates import parse_now
    from tracker.digest import window_from_options
    from tracker.library import read_library

    if (library_file is None) == (email is None):
        raise ConfigError("pass one of --library FILE or --for EMAIL")
    window = window_from_options(week, since, until, parse_now(now).date())
    library = read_library(Path(library_file)) if library_file else None
    db = store.open_readonly(db_path)
    vocab = recommend.Vocabulary.of(db, db_path)
    if library:
        resolved = readers.resolve(db, library)
        ids = [r.arxiv_id for r in resolved if r.arxiv_id and r.status == readers.MATCHED]
        for line in readers.problems(resolved):
            click.echo(line, err=True)
        model = vocab.fit(ids)
    elif email is not None:
        email = email.strip()
        if email not in dict(store.list_subscribers(db)):
            raise ConfigError(f"{email} is not subscribed")
        ids = store.library_ids(db, email)
        if not ids:
            again = f"tracker subscribe {shlex.quote(db_path)} {email} --library FILE"
            raise ConfigError(f"{email} has no library papers in the database; add some: {again}")
        stored = vocab.reader(email, save=False)
        if stored is None:
            raise ConfigError(vocab.why_nothing(ids))
        model = stored
    papers = recommend.Window.read(vocab, window.since.isoformat(), window.until.isoformat())
    picks = recommend.rank(vocab, papers, model, ids, limit)
    if as_json:
        click.echo(json.dumps([p.as_json() for p in picks], indent=2, ensure_ascii=False))
        return
    if not picks:
        said = "only papers of the library" if papers.ids else "no classified papers"
        click.echo(f"{window.label}: {said} in this window; nothing to rank", err=True)
        return
    click.echo(f"{window.label}: {len(picks)} papers for this library, best first")
    for p in picks:
        click.echo(f"{p.score:.3f}  {p.arxiv_id:<16}  {p.title}")
        click.echo(f"{'':>7}like: {p.like_title}")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("email")
@wait_option()
@handle_errors
def unsubscribe(db_path: str, email: str, wait: float) -> None:
    """Stop sending the weekly digest to EMAIL (what it was sent stays recorded).

    \b
    Example:
        tracker unsubscribe papers.db me@example.org
    """
    existing(db_path)
    from tracker import store

    with store.writer_lock(db_path, wait):
        if not store.delete_subscriber(store.open_db(db_path), email.strip()):
            raise ConfigError(f"{email} is not subscribed")
    click.echo(f"unsubscribed {email}")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--max-missed",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="arXiv mailings that may be missing before the data counts as stale",
)
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time")
@handle_errors
def status(db_path: str, max_missed: int, now: str | None) -> None:
    """Report sync health and the next digest; exit 1 when the last sync failed or the data is stale.

    Stale means older than arXiv's calendar allows: announcements come at 20:00 US/Eastern,
    Sunday to Thursday. Suited to a monitor: `tracker status db || alert`.

    \b
    Example:
        tracker status papers.db
    """
    existing(db_path)
    from tracker import store
    from tracker.dates import parse_now
    from tracker.status import collect_status, render_status

    report = collect_status(store.open_readonly(db_path), parse_now(now), max_missed)
    click.echo(render_status(report), nl=False)
    if report.problems:
        sys.exit(1)


@cli.command()
@handle_errors
def auth() -> None:
    """Save SMTP settings and the password to auth.json (mode 600), asking with hidden input.

    The file is `auth.json` in the current folder, or TRACKER_AUTH. Leave the password empty to keep
    the saved one.

    \b
    Example:
        tracker auth
    """
    from tracker import config, mail

    saved = config.load_auth()
    values = {k: v for k, v in saved.items()}
    values["smtp_host"] = click.prompt("SMTP server", default=saved.get("smtp_host"))
    values["smtp_security"] = click.prompt(
        "Security", type=click.Choice(mail.SECURITY), default=saved.get("smtp_security", "starttls")
    )
    values["smtp_port"] = str(
        click.prompt(
            "Port",
            type=click.IntRange(1, 65535),
            default=int(saved.get("smtp_port") or mail.DEFAULT_PORTS[values["smtp_security"]]),
        )
    )
    values["smtp_user"] = click.prompt(
        "Login", default=saved.get("smtp_user", ""), show_default=bool(saved.get("smtp_user"))
    )
    values["smtp_from"] = mail.check_address(
        click.prompt("Sender address", default=saved.get("smtp_from") or values["smtp_user"] or None),
        "sender",
    )
    password = click.prompt(
        "Password (hidden; empty keeps the saved one)", hide_input=True, default="", show_default=False
    )
    if password:
        values["smtp_password"] = password
    path = config.save_auth(values)
    click.echo(f"saved {path} (mode 600); the password is not shown", err=True)


# == datasette / export ==========================================================================


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback keeps it private)"
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="Port to listen on"
)
@verbose_option("Log the Datasette command line")
@handle_errors
def serve(db_path: str, host: str, port: int, verbose: int) -> None:
    """Browse DB_PATH in Datasette, read-only, with search, facets, canned queries and tag feeds.

    Uses db/metadata.yml and db/plugins/. Stop it with Ctrl-C.

    \b
    Example:
        tracker serve papers.db
        tracker serve papers.db --port 8080
        # Atom feed of a tag: http://127.0.0.1:8001/papers/tag_feed.atom?tag=M-CoT
    """
    from pathlib import Path

    from tracker.serve import check_address
    from tracker.serve import serve as run_datasette

    setup_logging(verbose)
    from tracker import store

    store.open_readonly(db_path).close()  # a missing or foreign file first: it is the likelier mistake
    check_address(host, port)
    click.echo(f"Serving {db_path} read-only at http://{host}:{port}/{Path(db_path).stem}", err=True)
    sys.exit(run_datasette(db_path, host=host, port=port))


@cli.command(name="public-copy")
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.argument("out_path", type=click.Path(dir_okay=False, writable=True))
@handle_errors
def public_copy(db_path: str, out_path: str) -> None:
    """Write OUT_PATH: a copy of DB_PATH without subscribers, digests or sync state, to publish.

    Keeps the papers, authors, tags, scores, announcements, the search index and the sync log
    (without queries and errors). OUT_PATH is replaced whole once the copy is checked.

    \b
    Example:
        tracker public-copy papers.db public.db
        datasette publish cloudrun public.db --metadata db/metadata.yml
    """
    from pathlib import Path

    from tracker import store
    from tracker.public import public_copy as write_public_copy

    store.open_readonly(db_path).close()  # refuses a missing or foreign file; the source is only read
    report = write_public_copy(Path(db_path), Path(out_path))
    left_out = ", ".join(report.left_out) or "nothing"
    click.echo(f"wrote {out_path}: {report.papers:,} papers, {report.size:,} bytes; left out: {left_out}")


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "bibtex", "markdown"]),
    default="jsonl",
    show_default=True,
    help="Output format",
)
@click.option("--tag", help="Only papers carrying this tag (slug, e.g. M-CoT)")
@click.option("--since", help="Only papers announced (or updated) on or after YYYY-MM-DD")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout")
@click.option(
    "--all-tasks", is_flag=True, help="Markdown: list every paper under the task tags, not only MLLM work"
)
@handle_errors
def export(
    db_path: str,
    fmt: str,
    tag: str | None,
    since: str | None,
    out: str | None,
    all_tasks: bool,
) -> None:
    """Export papers with their tags and scores: JSON lines, CSV, BibTeX or a markdown awesome list.

    Papers come newest first; the awesome list is grouped by facet (MLLM kind, topic, paradigm,
    architecture, task) and by tag in taxonomy order, and its task sections list only multimodal-LLM
    work unless --all-tasks or --tag names that task.

    \b
    Example:
        tracker export papers.db --format bibtex --tag M-CoT > m-cot.bib
        tracker export papers.db --format markdown --since 2026-01-01 --out AWESOME.md
        tracker export papers.db --format csv --tag hallucination
    """
    from tracker import store
    from tracker.export import (
        check_since,
        check_tag,
        load_taxonomy_if_any,
        markdown_rows,
        render_chunks,
        write_output,
    )

    taxonomy = load_taxonomy_if_any()
    since = check_since(since)
    db = store.open_readonly(db_path)
    tag = check_tag(tag, taxonomy, store.stored_tags(db))
    exported = [0]  # counted as the rows stream past (they are never all in memory)

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            exported[0] += fmt != "markdown" or bool(row["tags"])  # the awesome list shows tagged papers only
            yield row

    companions = database_files(db_path)
    rows = store.papers_for_export(db, tag, since)
    if (
        fmt == "markdown"
    ):  # count what the list shows: not a paper whose only tags are task tags it leaves out
        rows = markdown_rows(rows, taxonomy, tag, all_tasks)
    write_output(render_chunks(fmt, counted(rows), taxonomy, tag, all_tasks), out, companions)
    n = exported[0]
    click.echo(
        f"exported {n} paper{'' if n == 1 else 's'} as {fmt}" + (f" to {out}" if out else ""), err=True
    )


# == backfill ====================================================================================


@cli.command()
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--from", "from_", required=True, help="First datestamp to harvest, YYYY-MM-DD")
@click.option(
    "--until", help="Last datestamp to harvest, YYYY-MM-DD (default: today; a rerun picks up new records)"
)
@click.option(
    "--set",
    "set_spec",
    default="cs",
    show_default=True,
    help="OAI-PMH set: cs, cs:cs:CV, physics:hep-th, ...",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Keep papers in this category (repeatable); default: rules/queries.yml",
)
@click.option("--oai-url", default=DEFAULT_OAI_URL, show_default=True, help="OAI-PMH base URL")
@click.option(
    "--metadata-prefix",
    "prefix",
    type=click.Choice(["arXiv", "arXivRaw"]),
    default="arXiv",
    show_default=True,
    help="arXivRaw adds every version's number and date",
)
@delay_option()
@timeout_option(DEFAULT_OAI_TIMEOUT)
@deadline_option()
@click.option("--no-classify", is_flag=True, help="Do not tag the harvested papers")
@wait_option()
@verbose_option()
@handle_errors
def backfill(
    db_path: str,
    from_: str,
    until: str | None,
    set_spec: str,
    categories: tuple[str, ...],
    oai_url: str,
    prefix: str,
    delay: float,
    timeout: float,
    deadline: float | None,
    no_classify: bool,
    wait: float,
    verbose: int,
) -> None:
    """Harvest past papers from arXiv's OAI-PMH interface into DB_PATH, a month at a time.

    Progress is saved after every page: an interrupted backfill continues where it stopped.

    \b
    Example:
        tracker backfill papers.db --from 2023-01-01
        tracker backfill papers.db --from 2024-01-01 --until 2024-06-30 --set cs:cs:CV --category cs.CV
        tracker backfill papers.db --from 2022-01-01 --metadata-prefix arXivRaw --no-classify
    """
    from tracker import store
    from tracker.backfill import BackfillOptions, run_backfill
    from tracker.dates import parse_day
    from tracker.fetch import PoliteSession
    from tracker.oai import USER_AGENT
    from tracker.queries import check_categories, load_queries

    setup_logging(verbose)
    opts = BackfillOptions(
        from_date=parse_day(from_, "--from"),
        until_date=parse_day(until, "--until"),
        set_spec=set_spec or None,
        prefix=prefix,
        oai_url=oai_url,
        categories=check_categories(categories) if categories else load_queries().categories,
    )
    # Backoff follows --delay (5 s at the default 3 s) so a test or mirror run with --delay 0 never stalls.
    session = PoliteSession(
        delay=delay,
        timeout=timeout,
        backoff=delay * DEFAULT_BACKOFF / DEFAULT_DELAY,
        user_agent=USER_AGENT,
        deadline=deadline,
        url_options={oai_url: "--oai-url"},
        notify=terminal_notice(),
    )
    progress = for_terminal("backfill")
    with store.writer_lock(db_path, wait):
        db = store.open_db(db_path)
        try:
            report = run_backfill(db, opts, session, progress=progress)
        finally:
            if progress:
                progress.close()
        click.echo(report.summary())
        if not no_classify and not report.already_done:
            classify_new(db, db_path)
