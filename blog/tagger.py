"""A stand-in for an external NLP tagging API.

``extract_tags`` is the "model": plain, deterministic keyword extraction from a post's title
and body. ``Tagger`` wraps it the way a remote API behaves in real life: it is slow
(``latency`` seconds a call) and sometimes fails (``failure_rate``, 0 to 1), so that the
lesson's retries and the "don't keep the user waiting" demo have something real to show.
"""

import random
import re
import time
from collections import Counter

from blog.models import Tag

DEFAULT_MAX_TAGS = 5
TITLE_WEIGHT = 3
MIN_WORD_LENGTH = 2

# Terms of more than one word that the tagger knows; found before single words.
LEXICON = (
    "background jobs",
    "job queue",
    "message queue",
    "machine learning",
    "web development",
    "ruby on rails",
    "unit testing",
    "continuous integration",
    "open source",
    "rate limiting",
    "dependency injection",
    "data science",
    "user experience",
    "command line",
)

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can cannot could did didn do does doesn doing don
    down during each even ever every few first for from further get gets got had has have
    having he her here hers herself him himself his how however i if in into is isn it its
    itself just last less let like made make makes many may me might more most much must my
    myself need new no nor not now of off often on once one only or other our ours ourselves
    out over own per put really said same see she should so some still such than that the
    their theirs them themselves then there these they this those though through to too two
    under until up upon us use used uses using very via was wasn way we well were what when
    where which while who whom why will with within without would yet you your yours yourself
    yourselves today thing things something lot lots want wants going know take
    """.split()
)

WORD = re.compile(r"[^\W\d_][\w+#]*(?:[.-][\w+#]+)*")


class TaggerUnavailable(Exception):
    """The tagging service did not answer (simulated): worth retrying later."""


def extract_tags(title: str, body: str, max_tags: int = DEFAULT_MAX_TAGS) -> list[str]:
    """The most telling terms of a post, best first: lexicon terms, then frequent words.

    Words in the title count ``TITLE_WEIGHT`` times; ties go to the term that appears first.
    The same title and body always give the same tags.
    """
    text = Tag.normalise(f"{title}\n{title}\n{title}\n{body}")  # as the author's tags are
    scores: Counter[str] = Counter()
    first_seen: dict[str, int] = {}

    for term in LEXICON:
        for match in re.finditer(rf"\b{re.escape(term)}\b", text):
            scores[term] += 1
            first_seen.setdefault(term, match.start())
        text = re.sub(rf"\b{re.escape(term)}\b", " ", text)

    for match in WORD.finditer(text):
        word = match.group().strip(".-")
        if len(word) < MIN_WORD_LENGTH or word in STOP_WORDS or len(word) > 40:
            continue
        scores[word] += 1
        first_seen.setdefault(word, match.start())

    ranked = sorted(scores, key=lambda term: (-scores[term], first_seen[term]))
    return ranked[:max_tags]


class Tagger:
    """The tagging "API" client: ``extract_tags`` behind a delay and a failure rate."""

    def __init__(
        self,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        max_tags: int = DEFAULT_MAX_TAGS,
        rng: random.Random | None = None,
    ):
        if not 0 <= failure_rate <= 1:
            raise ValueError("failure_rate must be between 0 and 1")
        self.latency = latency
        self.failure_rate = failure_rate
        self.max_tags = max_tags
        self.rng = rng or random.Random()

    def tags_for(self, title: str, body: str) -> list[str]:
        if self.latency > 0:
            time.sleep(self.latency)
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise TaggerUnavailable("the tagging service timed out (simulated failure)")
        return extract_tags(title, body, self.max_tags)
