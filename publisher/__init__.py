"""publisher: Markdown and upstream articles to feeds and email digests."""

# The one place the version is written: the build reads it from here (pyproject.toml,
# [tool.hatch.version]), and the code imports it without asking importlib.metadata,
# whose import costs a command start-up about 0.05 s (issue 18).
__version__ = "0.1.0"

from publisher.store import lean_asyncio  # noqa: E402  # before any module imports SQLAlchemy's asyncio package

lean_asyncio.install()
