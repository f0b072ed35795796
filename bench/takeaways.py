"""Proposed takeaways against the authors': ROUGE-1 F1 of the suggester and of lead-3.

Issue 20's figure; it prints them, it is not a test.  For every article with takeaways
of its author (the sample articles in ``content/`` and ``bench/fixtures/``, among them
the seed article the sample was rewritten from), the takeaways are hidden and two
proposals made from the body alone:

* ``suggest``: :func:`publisher.content.takeaways.suggest`, what ``[content] takeaways``
  shows or publishes;
* ``lead-3``: the body's first three sentences, the baseline every summarizer is held to.

Each is scored by ROUGE-1 F1 against the author's takeaways (all items of a side joined:
the unigrams, lower-cased, of letters and digits, each counted at most as often as the
other side has it; no stemming, no stop words: the ``rouge-score`` package's defaults,
written out here as a few lines rather than a dependency).  The goal: suggest above lead-3.

Then what proposing costs, against what parsing the same article costs (under
``[content] takeaways = "auto"`` every article without takeaways pays both at a scan):
the median CPU time of each over ``--runs`` runs, per article.

    .venv/bin/python bench/takeaways.py            # content/ and bench/fixtures/
    .venv/bin/python bench/takeaways.py --show     # and every proposal
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time
from collections.abc import Callable
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from publisher.content.markdown import parse_article, read_article
from publisher.content.model import Article
from publisher.content.takeaways import lead, suggest

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://news.example.org/"
_TOKENS = re.compile(r"[a-z0-9]+")


def rouge1_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-1 F1 of ``candidate``'s items against ``reference``'s, each side's items joined."""
    got = Counter(_TOKENS.findall(" ".join(candidate).lower()))
    want = Counter(_TOKENS.findall(" ".join(reference).lower()))
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def median_ms(step: Callable[[], object], runs: int) -> float:
    """The median CPU time of ``step``, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        step()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def articles(folders: Sequence[Path]) -> list[Article]:
    """The articles of ``folders`` that have takeaways of their author."""
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.md")):
            article = read_article(path.read_bytes(), str(path.relative_to(ROOT)), SITE).article
            if article is not None and article.takeaways:
                found.append(article)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[ROOT / "content", ROOT / "bench" / "fixtures"],
                        help="folders of Markdown articles (default: content/ and bench/fixtures/)")
    parser.add_argument("--show", action="store_true", help="print every proposal and the author's takeaways")
    parser.add_argument("--runs", type=int, default=50, help="runs of each step for the timings (default: 50)")
    args = parser.parse_args()
    found = articles(args.folders)
    if not found:
        parser.error("no article with takeaways in " + ", ".join(map(str, args.folders)))
    print(f"{'article':<40} {'items':>5} {'suggest':>8} {'lead-3':>8} {'ratio':>6}")
    ours, baseline = [], []
    for article in found:
        hidden = dataclasses.replace(article, takeaways=())
        proposed, first = suggest(hidden), lead(hidden)
        ours.append(rouge1_f1(proposed, article.takeaways))
        baseline.append(rouge1_f1(first, article.takeaways))
        ratio = f"{ours[-1] / baseline[-1]:.2f}" if baseline[-1] else "—"
        print(f"{Path(article.source_path).name:<40} {len(proposed):>5} {ours[-1]:>8.3f} {baseline[-1]:>8.3f} {ratio:>6}")
        if args.show:
            for label, items in (("author", article.takeaways), ("suggest", proposed), ("lead-3", first)):
                print(f"  {label}:")
                for item in items:
                    print(f"    - {item}")
    mean, mean_lead = statistics.fmean(ours), statistics.fmean(baseline)
    print(f"{'mean':<40} {'':>5} {mean:>8.3f} {mean_lead:>8.3f} {mean / mean_lead if mean_lead else 0:>6.2f}")
    print(f"suggest {'beats' if mean > mean_lead else 'does not beat'} lead-3 (ROUGE-1 F1, mean of {len(found)})")
    print()
    print(f"{'article':<40} {'parse ms':>9} {'suggest ms':>11} {'ratio':>6}")
    for article in found:
        data = (ROOT / article.source_path).read_bytes()
        parsing = median_ms(lambda: parse_article(data, article.source_path, SITE), args.runs)
        proposing = median_ms(lambda: suggest(article), args.runs)
        print(f"{Path(article.source_path).name:<40} {parsing:>9.2f} {proposing:>11.2f} {proposing / parsing:>6.2f}")


if __name__ == "__main__":
    main()
