"""A process and all its descendants: who forked whom, their threads, and their memory.

``python -m devtools.process_tree PID`` prints it for a worker (chapter 006 of the lessons
compares the worker's threads mode with its fork mode this way). Memory is shown twice:

- PSS (proportional set size): each page counted once in all, split between the processes
  that share it. A forked process shares its parent's pages until one of them writes to a
  page, so this is what the whole tree really costs the machine.
- RSS: each process counting every page it uses as its own, as ``ps`` and ``top`` show it.
  Summed over forked processes, it counts the shared pages again for every process.
"""

import argparse
import contextlib
from dataclasses import dataclass

import psutil

MB = 2**20


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    parent: int
    threads: int
    pss: int
    rss: int
    command: str


def process_tree(pid: int) -> list[ProcessMemory]:
    """``pid`` and its descendants, parents before their children; those that end while they
    are read are left out."""
    root = psutil.Process(pid)
    found = []
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess), process.oneshot():
            memory = process.memory_full_info()
            found.append(
                ProcessMemory(
                    pid=process.pid,
                    parent=process.ppid(),
                    threads=process.num_threads(),
                    pss=memory.pss,
                    rss=memory.rss,
                    command=" ".join(process.cmdline()),
                )
            )
    return found


def report(tree: list[ProcessMemory]) -> str:
    lines = [f"{'pid':>7} {'parent':>7} {'threads':>7} {'pss':>7} {'rss':>7}  command"]
    for p in tree:
        lines.append(
            f"{p.pid:>7} {p.parent:>7} {p.threads:>7} {p.pss / MB:>4.0f} MB {p.rss / MB:>4.0f} MB"
            f"  {p.command}"
        )
    pss = sum(p.pss for p in tree) / MB
    rss = sum(p.rss for p in tree) / MB
    lines.append(
        f"{len(tree)} process(es), {sum(p.threads for p in tree)} thread(s): {pss:.0f} MB in all "
        f"(PSS); {rss:.0f} MB if each counted the pages it shares (RSS)"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.process_tree", description=__doc__)
    parser.add_argument("pid", type=int, help="the process at the top of the tree")
    args = parser.parse_args(argv)
    try:
        print(report(process_tree(args.pid)))
    except psutil.NoSuchProcess:
        parser.exit(1, f"no process {args.pid}\n")


if __name__ == "__main__":
    main()
