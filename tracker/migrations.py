"""The database schema: one `sqlite_utils.Migrations` set, applied on every open.

Never edit a migration that has shipped; add the next `mNNN_...` function instead.
Dates are ISO-8601 UTC text; JSON lists are stored as JSON text.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("tracker")


@migrations()
def m001_create_papers(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE papers (
            arxiv_id TEXT PRIMARY KEY,          -- without version: 2301.01234 or hep-th/9901001
            version INTEGER NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT '',
            authors TEXT NOT NULL DEFAULT '[]', -- JSON list of names, in order
            primary_category TEXT,
            categories TEXT NOT NULL DEFAULT '[]', -- JSON list, primary first
            published TEXT,                     -- first version, ISO UTC
            updated TEXT,                       -- this version, ISO UTC
            comment TEXT,
            journal_ref TEXT,
            doi TEXT,
            abs_url TEXT,
            pdf_url TEXT,
            first_seen TEXT NOT NULL,
            announce_type TEXT,                 -- new / cross / replace / replace-cross (latest seen)
            announced TEXT,                     -- date of that announcement, YYYY-MM-DD
            needs_metadata INTEGER NOT NULL DEFAULT 0, -- 1: only seen in a feed, full record still to fetch
            tags TEXT NOT NULL DEFAULT '[]',    -- JSON list of tag slugs (mirror of paper_tags, for facets)
            tagged_by TEXT                      -- model_id that last classified this paper
        );
        CREATE INDEX idx_papers_published ON papers(published);
        CREATE INDEX idx_papers_announced ON papers(announced);
        CREATE INDEX idx_papers_primary ON papers(primary_category);
        CREATE INDEX idx_papers_tagged_by ON papers(tagged_by);

        CREATE TABLE authors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        );
        CREATE TABLE paper_authors (
            arxiv_id TEXT NOT NULL REFERENCES papers(arxiv_id),
            author_id INTEGER NOT NULL REFERENCES authors(id),
            position INTEGER NOT NULL,
            PRIMARY KEY (arxiv_id, author_id)
        );
        CREATE INDEX idx_paper_authors_author ON paper_authors(author_id);

        CREATE TABLE paper_versions (
            arxiv_id TEXT NOT NULL REFERENCES papers(arxiv_id),
            version INTEGER NOT NULL,
            updated TEXT,                       -- date arXiv gives for this version
            first_seen TEXT NOT NULL,
            PRIMARY KEY (arxiv_id, version)
        );

        CREATE TABLE announcements (
            arxiv_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            announce_type TEXT NOT NULL,
            announced TEXT NOT NULL,            -- YYYY-MM-DD of the feed
            feed TEXT NOT NULL,
            PRIMARY KEY (arxiv_id, announced, feed)
        );
        CREATE INDEX idx_announcements_announced ON announcements(announced);

        CREATE TABLE sync_runs (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            source TEXT NOT NULL,               -- api / rss / load / oai / demo
            query TEXT NOT NULL,
            window_since TEXT,
            window_until TEXT,
            new INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            requests INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,               -- running / ok / empty / failed
            error TEXT
        );
        CREATE INDEX idx_sync_runs_started ON sync_runs(started);

        CREATE TABLE sync_state (
            query_key TEXT PRIMARY KEY,         -- e.g. api:cat:cs.CV OR cat:cs.CL
            watermark TEXT,                     -- end of the last complete window, ISO UTC
            resume_since TEXT,                  -- an interrupted window, to finish first
            resume_until TEXT,
            resume_offset INTEGER,
            updated TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_create_tags(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE paper_tags (
            arxiv_id TEXT NOT NULL REFERENCES papers(arxiv_id),
            tag TEXT NOT NULL,
            facet TEXT NOT NULL,
            score REAL NOT NULL,
            source TEXT NOT NULL,               -- rule / model / manual
            model_id TEXT,
            PRIMARY KEY (arxiv_id, tag)
        );
        CREATE INDEX idx_paper_tags_tag ON paper_tags(tag, score);

        CREATE TABLE manual_labels (
            arxiv_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            action TEXT NOT NULL,               -- add / remove
            created TEXT NOT NULL,
            PRIMARY KEY (arxiv_id, tag)
        );

        -- Per-tag score and threshold of the latest model, kept also for tags a paper did not get,
        -- so "uncertain" papers (near the threshold) can be listed for labelling.
        CREATE TABLE tag_scores (
            arxiv_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            score REAL NOT NULL,
            threshold REAL NOT NULL,
            model_id TEXT NOT NULL,
            PRIMARY KEY (arxiv_id, tag)
        );
        """
    )


@migrations()
def m003_create_digests(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE subscribers (
            email TEXT PRIMARY KEY,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON list; empty means all tags
            created TEXT NOT NULL
        );
        CREATE TABLE digests (
            recipient TEXT NOT NULL,
            window TEXT NOT NULL,              -- e.g. 2026-W47 or 2026-11-16..2026-11-22
            state TEXT NOT NULL,               -- sending / sent / failed / empty
            attempts INTEGER NOT NULL DEFAULT 0,
            papers INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            message_id TEXT,
            updated TEXT NOT NULL,
            PRIMARY KEY (recipient, window)
        );
        CREATE TABLE digest_papers (
            recipient TEXT NOT NULL,
            arxiv_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            window TEXT NOT NULL,
            PRIMARY KEY (recipient, arxiv_id)
        );
        """
    )


@migrations()
def m004_create_backfill(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE backfill_state (
            harvest_key TEXT PRIMARY KEY,      -- endpoint + set + prefix + overall from/until
            window_from TEXT NOT NULL,         -- current window being harvested
            window_until TEXT NOT NULL,
            token TEXT,                        -- resumption token within the window
            records INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            updated TEXT NOT NULL
        );
        """
    )


@migrations()
def m005_create_fts(db: Database) -> None:
    # External-content FTS5 over papers, with triggers of our own: sqlite-utils' triggers fire on an
    # update of any column, and classify updates `tags` on every paper, which would rewrite the index.
    db.executescript(
        """
        CREATE VIRTUAL TABLE papers_fts USING fts5(
            title, abstract, content='papers', tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER papers_ai AFTER INSERT ON papers BEGIN
            INSERT INTO papers_fts(rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        CREATE TRIGGER papers_ad AFTER DELETE ON papers BEGIN
            INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
        END;
        CREATE TRIGGER papers_au AFTER UPDATE OF title, abstract ON papers BEGIN
            INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
            INSERT INTO papers_fts(rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        """
    )


@migrations()
def m006_bulk_fts(db: Database) -> None:
    # Bulk writers index a whole batch with one INSERT ... SELECT, about twice as fast as a trigger
    # per row. They set a flag row inside their own transaction (so no other connection ever sees
    # it) and the insert trigger stands aside; every other writer still gets the trigger.
    db.executescript(
        """
        CREATE TABLE fts_bulk (active INTEGER NOT NULL);
        DROP TRIGGER papers_ai;
        CREATE TRIGGER papers_ai AFTER INSERT ON papers WHEN NOT EXISTS (SELECT 1 FROM fts_bulk) BEGIN
            INSERT INTO papers_fts(rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        """
    )


@migrations()
def m007_index_event_day(db: Database) -> None:
    # The day a paper counts for (store.EVENT_DATE_SQL: announcement date, else the date of its current
    # version, else of v1) as an expression index, so "this week" filters and "newest first" orders
    # become index range scans instead of whole-table scans (1M papers: a second and more -> ms).
    # SQLite uses it only where a query spells exactly this expression (a table alias is fine).
    db.execute(
        "CREATE INDEX idx_papers_event_day ON papers("
        "COALESCE(announced, substr(updated, 1, 10), substr(published, 1, 10)))"
    )


@migrations()
def m008_fts_automerge(db: Database) -> None:
    # FTS5 merges index segments as batches arrive; merging once 16 segments of a size pile up instead
    # of 4 rewrites each entry about half as often over a long backfill (100k papers: ingest ~11 %
    # faster) and searches measured no slower (bench/bench_scale.py). Stored in papers_fts_config.
    db.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('automerge', 16)")


@migrations()
def m009_fts_detectable(db: Database) -> None:
    # sqlite-utils (`sqlite-utils search`) and Datasette find a table's FTS index by the spelling
    # content="papers" in its schema; m005 wrote content='papers', which neither recognises. Same
    # index, declared again and rebuilt from papers; the insert trigger keeps m006's bulk switch and
    # the merge setting of m008 is set again (it lives in the dropped index's config table).
    db.executescript(
        """
        DROP TRIGGER papers_ai;
        DROP TRIGGER papers_ad;
        DROP TRIGGER papers_au;
        DROP TABLE papers_fts;
        CREATE VIRTUAL TABLE papers_fts USING fts5(
            title, abstract, content="papers", tokenize='porter unicode61 remove_diacritics 2'
        );
        INSERT INTO papers_fts (papers_fts) VALUES ('rebuild');
        INSERT INTO papers_fts (papers_fts, rank) VALUES ('automerge', 16);
        CREATE TRIGGER papers_ai AFTER INSERT ON papers WHEN NOT EXISTS (SELECT 1 FROM fts_bulk) BEGIN
            INSERT INTO papers_fts(rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        CREATE TRIGGER papers_ad AFTER DELETE ON papers BEGIN
            INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
        END;
        CREATE TRIGGER papers_au AFTER UPDATE OF title, abstract ON papers BEGIN
            INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
            INSERT INTO papers_fts(rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        """
    )


@migrations()
def m010_mllm_relevance(db: Database) -> None:
    # The classifier's "is this paper about multimodal LLMs" score (0-1) and its verdict (1/0), written
    # with the tags: it gates the MLLM-specific tags, orders the digest and is a Datasette facet.
    db.executescript(
        """
        ALTER TABLE papers ADD COLUMN relevance REAL;
        ALTER TABLE papers ADD COLUMN mllm INTEGER;
        """
    )


@migrations()
def m011_readers_and_neighbours(db: Database) -> None:
    # Issue 15. paper_vectors: each paper's TF-IDF vector under a model's vocabulary (sorted term ids as
    # little-endian int32, weights as float32, L2-normalised), so nearest neighbours and reader models never
    # re-tokenise a million abstracts. `neighbours_by` is the model_id its similar_papers list was computed
    # under (NULL: still to do); `floor` is the score of its k-th neighbour, the bar a newcomer must beat.
    # similar_papers: the nearest papers of each paper by cosine, rank 1 the closest.
    # library: a subscriber's own papers, as read from the file they gave (private, like subscribers).
    # reader_models: a subscriber's fitted ranking model, and what it was fitted on.
    db.executescript(
        """
        CREATE TABLE paper_vectors (
            -- no REFERENCES papers: a paper's Datasette row page counts the rows of every table that
            -- references it, and the authorizer refuses this private table, so the page would answer 500
            arxiv_id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            terms BLOB NOT NULL,
            weights BLOB NOT NULL,
            neighbours_by TEXT,
            floor REAL NOT NULL DEFAULT 0
        );
        CREATE INDEX idx_paper_vectors_pending ON paper_vectors(model_id, neighbours_by);
        CREATE TABLE similar_papers (
            arxiv_id TEXT NOT NULL REFERENCES papers(arxiv_id),
            rank INTEGER NOT NULL,
            similar_id TEXT NOT NULL REFERENCES papers(arxiv_id),
            score REAL NOT NULL,
            PRIMARY KEY (arxiv_id, rank)
        );
        CREATE TABLE library (
            email TEXT NOT NULL REFERENCES subscribers(email),
            position INTEGER NOT NULL,         -- the entry's place in the file (two may share a line)
            line INTEGER NOT NULL,             -- where in the file the entry starts
            arxiv_id TEXT,                     -- NULL: could not be matched
            entry TEXT NOT NULL,               -- what the file said (id, URL, DOI or title)
            status TEXT NOT NULL,              -- matched / fetched / missing / unmatched
            PRIMARY KEY (email, position)
        );
        CREATE TABLE reader_models (
            email TEXT PRIMARY KEY REFERENCES subscribers(email),
            model_id TEXT NOT NULL,            -- the vocabulary it was fitted over
            library_hash TEXT NOT NULL,        -- the library papers it was fitted on
            weights BLOB NOT NULL,             -- float32 per term
            bias REAL NOT NULL,
            fitted TEXT NOT NULL
        );
        """
    )
