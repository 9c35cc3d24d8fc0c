"""The console-block convention of the docs tests: how steps are read and output compared."""

import pytest

from tests.console_docs import CI_STEP, MAKE_RUN, console_steps, make_run_variables, matches

CHAPTER = """
Some prose.

```console
$ flask jobs demo --delay 2 \\
  --message "hi"    # a comment
<id>
Enqueued 1 demo job(s) on default.
$ TAGGER_LATENCY=3 make run
$ rq worker urgent   # keeps running
```

```text
$ not a step
```

- In a list:

  ```console
  $ flask jobs oops
  Error: No such command 'oops'.
  [exit 2]
  ```
"""


def test_steps_are_read_from_console_blocks_only():
    steps = console_steps(CHAPTER)
    assert [step.command for step in steps] == [
        'flask jobs demo --delay 2 --message "hi"    # a comment',
        "TAGGER_LATENCY=3 make run",
        "rq worker urgent   # keeps running",
        "flask jobs oops",
    ]
    demo, make_run, worker, oops = steps
    assert demo.output == ["<id>", "Enqueued 1 demo job(s) on default."]
    assert (demo.exit_status, oops.exit_status) == (0, 2)
    assert oops.output == ["Error: No such command 'oops'."]
    assert MAKE_RUN.match(make_run.code) and not MAKE_RUN.match(demo.code)
    assert worker.keeps_running and not demo.keeps_running
    assert steps[0].line == 5


@pytest.mark.parametrize(
    ("expected", "output", "same"),
    [
        (["<id>", "Enqueued 1 job."], "3c1d-9f\nEnqueued 1 job.\n", True),
        (["<id>", "Enqueued 1 job."], "3c1d-9f\nEnqueued 2 jobs.\n", False),
        (["waited <n> s"], "waited 1,234.5 s\n", True),
        (["waited <n> s"], "waited a while s\n", False),
        (["a    <n>   b"], "a 12 b\n", True),  # columns may shift
        (["first", "...", "last"], "first\nx\ny\nlast\n", True),
        (["first", "...", "last"], "first\nlast\n", True),
        (["first", "...", "last"], "first\nlast\nmore\n", False),
        (["at <time> UTC..."], "at 2026-12-01 10:00:00 UTC.\n", True),
        (["only this"], "only this\nand more\n", False),
        (["only this"], "only this\n\n", True),
    ],
)
def test_output_is_compared_line_by_line_with_placeholders(expected, output, same):
    assert matches(expected, output) is same


def test_make_run_variables_are_unquoted_and_expanded():
    prefix = MAKE_RUN.match('MAIL_URL="smtp://h:1025?tls=off" N=${JOBS:-25} make run')[1]
    assert make_run_variables(prefix, {"JOBS": "4"}) == {
        "MAIL_URL": "smtp://h:1025?tls=off",
        "N": "4",
    }
    assert make_run_variables(prefix, {})["N"] == "25"


def test_ci_steps_are_recognised():
    assert CI_STEP.match("make test")
    assert CI_STEP.match("TEST_DATABASE_URL=postgresql://x make test")
    assert not CI_STEP.match("make test && rm -rf /")
