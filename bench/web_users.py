"""The simulated users of the web rows (``bench/web.py``), run by Locust, headless, as a library.

``python -m bench.web_users MODE --clients N --seconds S --hosts URL[,URL...]`` runs N users
until every one has started (a writer signs up and logs in first), then counts S seconds of
requests, and prints what it counted as JSON: per kind of request, how many, how many failed,
the client's times and the app's own (its ``Server-Timing`` header).

- ``mixed``: writers, each with an account, that write a post and read a page in turn: the
  front page, then the post just written, then the front page again.
- ``index``: visitors, signed in to nothing, that read the front page and nothing else.

A run in its own process: Locust patches the standard library for gevent as it is imported,
which the rest of the bench (threads, subprocesses) must not get.

The users talk to gunicorn as a platform's router would: over plain HTTP, saying that the
browser's request came over HTTPS (``X-Forwarded-Proto``) and from which address
(``X-Forwarded-For``, one per user, so that the per-address limits on signups count each user
on their own, as they would count real people).
"""

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import time
from http.cookiejar import DefaultCookiePolicy

import gevent
import psutil
from locust import FastHttpUser, constant, events, task
from locust.env import Environment

PASSWORD = "bench-password"
CSRF_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SERVER_TIMING = re.compile(r"dur=([0-9.]+)")


# Where the machine's CPU goes, by kind of process (``Window.cpu_by_kind``).
PROCESS_KINDS = ("web", "worker", "database", "redis", "load", "rest")


def process_kind(name: str, cmdline: list[str], web: set[int], pid: int) -> str:
    """The kind of a process: the web processes, the worker's (``python -m workers``),
    PostgreSQL's, Redis, this load generator, or the rest of the machine."""
    if pid in web:
        return "web"
    if pid == os.getpid():
        return "load"
    if name.startswith("postgres"):
        return "database"
    if name.startswith("redis-server"):
        return "redis"
    if cmdline[1:3] == ["-m", "workers"]:
        return "worker"
    return "rest"


def cpu_by_process(web: set[int]) -> dict[int, tuple[str, float]]:
    """Every process's kind and CPU seconds so far."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = process.info
        if info["cpu_times"] is None:  # gone, or not ours to read
            continue
        kind = process_kind(info["name"] or "", info["cmdline"] or [], web, process.pid)
        found[process.pid] = (kind, info["cpu_times"].user + info["cpu_times"].system)
    return found


def busy_seconds(times) -> float:
    """The CPU time the machine's cores spent working (``psutil.cpu_times()``): in processes
    and in the kernel, not idle nor waiting for the disk (a guest's time is in ``user``)."""
    return times.user + times.nice + times.system + times.irq + times.softirq


class Window:
    """The requests counted: those that end between ``open`` and ``close``."""

    def __init__(self, watched: list[int]):
        self.web = set(watched)  # the web processes' pids
        self.started_users = 0
        self.opened_at: float | None = None
        self.closed_at: float | None = None
        self.times: dict[str, list[float]] = {}
        self.app_times: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}

    def open(self) -> None:
        self.machine_before = psutil.cpu_times()
        self.processes_before = cpu_by_process(self.web)
        self.opened_at = time.monotonic()

    def close(self) -> None:
        self.closed_at = time.monotonic()
        machine, processes = psutil.cpu_times(), cpu_by_process(self.web)
        busy = busy_seconds(machine) - busy_seconds(self.machine_before)
        self.machine_busy = busy / (psutil.cpu_count() * (self.closed_at - self.opened_at))
        self.cpu_by_kind = dict.fromkeys(PROCESS_KINDS, 0.0)
        for pid, (kind, seconds) in processes.items():
            self.cpu_by_kind[kind] += seconds - self.processes_before.get(pid, (kind, 0.0))[1]
        # The kernel's own work (the loopback network's interrupts, ...) and processes that
        # ended within the window count as the rest.
        self.cpu_by_kind["rest"] += busy - sum(self.cpu_by_kind.values())

    @property
    def counting(self) -> bool:
        return self.opened_at is not None and self.closed_at is None

    def record(self, name, response_time, response, exception, **kwargs) -> None:
        if not self.counting:
            return
        if exception is not None:
            self.errors.setdefault(name, []).append(f"{type(exception).__name__}: {exception}")
            return
        self.times.setdefault(name, []).append(response_time)
        found = SERVER_TIMING.search(response.headers.get("Server-Timing") or "")
        if found:
            self.app_times.setdefault(name, []).append(float(found.group(1)))

    def results(self) -> dict:
        seconds = self.closed_at - self.opened_at
        kinds = {}
        for name in sorted(set(self.times) | set(self.errors)):
            times = self.times.get(name, [])
            app_times = self.app_times.get(name, [])
            errors = self.errors.get(name, [])
            kinds[name] = {
                "requests": len(times),
                "per_second": len(times) / seconds,
                "p50": percentile(times, 50),
                "p99": percentile(times, 99),
                "app_p50": percentile(app_times, 50),
                "app_mean": statistics.fmean(app_times) if app_times else None,
                "errors": len(errors),
                "first_errors": sorted(set(errors))[:3],
            }
        requests = sum(kind["requests"] for kind in kinds.values())
        per_request = {
            kind: 1000 * seconds / requests if requests else None
            for kind, seconds in self.cpu_by_kind.items()
        }
        return {
            "seconds": seconds,
            "kinds": kinds,
            # The web processes' CPU time per request: what the app costs, whatever else
            # keeps the machine's cores busy; and how busy they were, everything included.
            "cpu_ms_per_request": per_request["web"],
            "machine_busy": self.machine_busy,
            # The rest of the machine's CPU time per request, by kind of process: what else
            # the request costs (the worker's job, the database, Redis) and what measuring costs.
            "cpu_ms_by_kind": {kind: ms for kind, ms in per_request.items() if kind != "web"},
        }


def percentile(values: list[float], p: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# Made in main(), which knows the processes to watch; the users record into it.
window: Window
numbers = itertools.count(1)


class BehindTheRouter(DefaultCookiePolicy):
    """Cookie rules as the browser applies them on its side of the router, where the site is
    HTTPS: ``Secure`` cookies (the session, in production) go back over our plain HTTP."""

    def return_ok_secure(self, cookie, request) -> bool:
        return True


class Browser(FastHttpUser):
    """One person's browser behind the router; ``hosts`` are the web processes it may reach."""

    abstract = True
    wait_time = constant(0)  # the next request as soon as the answer is in: a closed loop
    hosts: tuple[str, ...] = ()

    def __init__(self, environment):
        super().__init__(environment)
        self.number = next(numbers)
        self.base = self.hosts[self.number % len(self.hosts)]
        self.client.cookiejar.set_policy(BehindTheRouter())
        self.headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": f"10.{self.number // 65536 % 256}.{self.number // 256 % 256}."
            f"{self.number % 256}",
        }

    def get(self, path: str, name: str, expect: int = 200):
        with self.client.get(
            self.base + path, name=name, headers=self.headers, catch_response=True
        ) as response:
            if response.status_code != expect:
                response.failure(f"{response.status_code} instead of {expect}")
            return response

    def post(self, path: str, name: str, data: dict, expect_location: str):
        """A form sent as a browser sends it: with the page it came from as the Referer, which
        Flask-WTF checks on HTTPS. The redirect that answers it is not followed."""
        headers = {**self.headers, "Referer": "https://" + self.base.split("://", 1)[1] + path}
        with self.client.post(
            self.base + path,
            name=name,
            data=data,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("Location") or ""
            if response.status_code != 302 or expect_location not in location:
                response.failure(f"{response.status_code} to {location!r}, not a redirect")
            return location

    def csrf_token(self, path: str, name: str) -> str:
        found = CSRF_TOKEN.search(self.get(path, name).text or "")
        if not found:
            raise RuntimeError(f"no CSRF token in {path}")
        return found.group(1)


class Writer(Browser):
    """Signs up and logs in once; then writes a post and reads a page, in turn."""

    abstract = True

    def on_start(self):
        email = f"writer{self.number}@example.com"
        account = {"email": email, "password": PASSWORD, "confirm": PASSWORD}
        token = self.csrf_token("/signup", "sign up")
        self.post("/signup", "sign up", {**account, "csrf_token": token}, "/login")
        token = self.csrf_token("/login", "log in")
        self.post("/login", "log in", {**account, "csrf_token": token}, "/")
        # A form's token is good for the session's lifetime (an hour): a writer who keeps the
        # editor open posts with it again and again, without loading the form each time.
        self.token = self.csrf_token("/posts/new", "new post form")
        self.posts = 0
        self.last_post = "/"
        window.started_users += 1

    @task
    def write_then_read(self):
        self.posts += 1
        self.last_post = self.post(
            "/posts/new",
            "create",
            {
                "title": f"Post {self.posts} of writer {self.number}",
                "body": "Background jobs keep a request short. " * 8,
                "tags": "bench, load",
                "csrf_token": self.token,
            },
            "/posts/",
        )
        if self.posts % 2:
            self.get("/", "read /")
        else:
            # The post just written: a path, or the whole URL.
            self.get("/posts/" + self.last_post.rsplit("/posts/", 1)[-1], "read post")


class Visitor(Browser):
    """Reads the front page, and nothing else, signed in to nothing."""

    abstract = True

    def on_start(self):
        window.started_users += 1

    @task
    def read_index(self):
        self.get("/", "/ alone")


def run(user_class, clients: int, seconds: float, warm_up: float, timeout: float) -> dict:
    environment = Environment(user_classes=[user_class], events=events)
    runner = environment.create_local_runner()
    runner.start(clients, spawn_rate=clients)
    deadline = time.monotonic() + timeout
    while window.started_users < clients:
        if time.monotonic() > deadline or environment.runner.exceptions:
            break
        gevent.sleep(0.05)
    else:
        gevent.sleep(warm_up)
        window.open()
        gevent.sleep(seconds)
        window.close()
    runner.quit()
    failures = [
        f"{error['msg']} ({error['count']}×)" for error in environment.runner.exceptions.values()
    ]
    if window.opened_at is None or window.closed_at is None:
        raise SystemExit(
            f"only {window.started_users} of {clients} users started within {timeout:.0f} s: "
            + ("; ".join(failures) or "no error")
        )
    return {**window.results(), "user_errors": failures}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web_users")
    parser.add_argument("mode", choices=("mixed", "index"))
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--hosts", required=True, help="the web processes, comma-separated")
    parser.add_argument("--watch", default="", help="pids of the web processes, comma-separated")
    parser.add_argument("--warm-up", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    global window
    window = Window([int(pid) for pid in args.watch.split(",") if pid])
    events.request.add_listener(window.record)
    hosts = tuple(args.hosts.split(","))
    user_class = type(
        "User",
        (Writer if args.mode == "mixed" else Visitor,),
        {"hosts": hosts, "host": hosts[0], "abstract": False},
    )
    results = run(user_class, args.clients, args.seconds, args.warm_up, args.timeout)
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
