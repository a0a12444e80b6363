"""Datasette plugin: keep the private tables of a tracker database off every page and out of the API.

`hidden: true` in the metadata only leaves a table out of the index; its page, JSON, CSV and rows
still answered. Here the `view-table` permission is refused, for every visitor, on each table
`tracker.public` does not list as public, so those addresses answer 403 and the database page does
not list them. Arbitrary SQL is stopped by the SQLite authorizer of `tracker_readonly`, which is what
actually guards the rows; this hook only makes the pages say so plainly.
"""

from __future__ import annotations

from typing import Any

from datasette import hookimpl

from tracker.public import is_public_table

# Datasette's own databases, not tracker files.
INTERNAL_DATABASES = {"_internal", "_memory"}


@hookimpl
def permission_allowed(actor: Any, action: str, resource: Any) -> bool | None:
    if action != "view-table" or not isinstance(resource, tuple) or len(resource) != 2:
        return None
    database, table = resource
    if database in INTERNAL_DATABASES or is_public_table(str(table)):
        return None  # Datasette's defaults decide
    return False
