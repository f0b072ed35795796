"""An article's state in the store, apart from the queries that read it.

The CLI's ``publisher articles list`` builds its options from these values, so
``publisher --help`` must reach them without importing SQLAlchemy (about 12 MB and a
tenth of a second of imports) through :mod:`publisher.store.articles`.
"""

from __future__ import annotations

from enum import StrEnum


class ArticleState(StrEnum):
    PUBLISHED = "published"
    REMOVED = "removed"  # its source no longer offers it, or an operator unpublished it
    SCHEDULED = "scheduled"  # dated in the future
    DRAFT = "draft"  # never stored: a Markdown file marked as a draft
