import ast
import os
import random
import subprocess
import sys

import pytest

from blog.posts.forms import parse_tags
from blog.tagger import Tagger, TaggerUnavailable, extract_tags

TITLE = "Background jobs with Redis and RQ"
BODY = (
    "Slow work leaves the request. A worker takes jobs from a Redis queue; RQ is a simple "
    "job queue for Python. Redis is fast, and background jobs keep pages quick."
)


def test_extracts_lexicon_terms_and_frequent_words_best_first():
    # A title word counts three times: redis 3 + 2, background jobs 3 + 1, rq 3 + 1; then the
    # words seen once, the earliest first ("job queue" comes after "slow" and "work").
    assert extract_tags(TITLE, BODY) == ["redis", "background jobs", "rq", "slow", "work"]


def test_a_lexicon_term_takes_its_words_with_it():
    tags = extract_tags("Notes", "A job queue, another job queue, a third job queue.")
    assert tags == ["notes", "job queue", "another", "third"]  # 3 each for the first two


def tags_in_a_new_process(hash_seed: str) -> list[str]:
    code = f"from blog.tagger import extract_tags; print(extract_tags({TITLE!r}, {BODY!r}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
    )
    return ast.literal_eval(result.stdout)


def test_the_same_post_gets_the_same_tags_in_every_process():
    # A worker process and a web process hash strings differently (set order, dict order of
    # sets): the tags must not depend on it.
    assert tags_in_a_new_process("1") == tags_in_a_new_process("2") == extract_tags(TITLE, BODY)


def test_drops_stop_words_numbers_and_short_words():
    assert extract_tags("The and of it", "is a 42 1999 x y") == []


def test_limits_the_number_of_tags():
    body = " ".join(f"word{n}" * 1 for n in range(30))
    assert len(extract_tags("many words", body, max_tags=4)) == 4


def test_keeps_unicode_and_programming_names():
    tags = extract_tags("Écrire du Python et C++", "node.js c# python python", max_tags=10)
    assert {"python", "c++", "node.js", "c#"} <= set(tags)


def test_folds_case_as_the_authors_tags_do():
    assert extract_tags("İstanbul", "Istanbul İSTANBUL", max_tags=5) == ["istanbul"]


def test_every_tag_is_a_valid_tag():
    title = "<script>alert('x')</script> ünïcødé — tags!!"
    body = "Ω" * 50 + " a-b-c " + "x" * 60 + " café crème brûlée 🚀 emoji"
    tags = extract_tags(title, body, max_tags=15)
    assert tags and parse_tags(", ".join(tags)) == tags


def test_tagger_can_fail_like_a_remote_api():
    with pytest.raises(TaggerUnavailable):
        Tagger(failure_rate=1).tags_for(TITLE, BODY)
    assert Tagger(failure_rate=0).tags_for(TITLE, BODY) == extract_tags(TITLE, BODY)


def test_tagger_failure_rate_is_a_probability():
    rng = random.Random(7)
    tagger = Tagger(failure_rate=0.5, rng=rng)
    outcomes = []
    for _ in range(200):
        try:
            tagger.tags_for("a title", "a body")
            outcomes.append(True)
        except TaggerUnavailable:
            outcomes.append(False)
    assert 70 < outcomes.count(False) < 130
    with pytest.raises(ValueError):
        Tagger(failure_rate=1.5)


def test_tagger_latency_sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr("blog.tagger.time.sleep", slept.append)
    Tagger(latency=2.5).tags_for(TITLE, BODY)
    assert slept == [2.5]
