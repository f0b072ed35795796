"""publisher: Markdown and upstream articles to feeds and email digests."""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("publisher")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0"
