"""``python -m devtools.process_tree``: the lessons' view of a worker's processes."""

import os
import subprocess
import sys

from devtools.process_tree import main, process_tree


def test_lists_a_process_and_the_children_it_forked(capsys):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = process_tree(os.getpid())
        main([str(os.getpid())])
    finally:
        child.kill()
        child.wait()
    assert tree[0].pid == os.getpid()
    (listed,) = [p for p in tree if p.pid == child.pid]
    assert listed.parent == os.getpid()
    assert listed.pss <= listed.rss
    out = capsys.readouterr().out
    assert f"{child.pid:>7} {os.getpid():>7}" in out
    assert out.splitlines()[-1].startswith(f"{len(tree)} process(es), ")


def test_a_process_that_is_gone_is_one_line_and_status_1(capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        main([str(gone.pid)])
    except SystemExit as exit:
        assert exit.code == 1
    assert capsys.readouterr().err == f"no process {gone.pid}\n"
