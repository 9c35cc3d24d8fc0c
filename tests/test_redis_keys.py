"""What Redis holds, by kind: ``flask jobs redis`` and the stats page's table, on the real
Redis (fakeredis has no INFO nor MEMORY USAGE)."""

import pytest

from blog import job_stats, redis_keys
from blog.queues import enqueue
from workers.demo import demo

pytestmark = pytest.mark.integration

SECRET = "a-value-only-the-user-should-see"


def test_keys_are_sorted_into_kinds_with_counts_and_memory(app, live_redis):
    with app.app_context():
        for _ in range(3):
            enqueue(demo, 0, SECRET)
    job_stats.record_job(live_redis, failed=True)
    live_redis.set("something:else", "x")

    space = redis_keys.keyspace(live_redis)
    kinds = {kind.kind: kind for kind in space.kinds}
    assert (kinds["queues"].keys, kinds["queues"].entries) == (1, 3)
    assert kinds["jobs"].keys == 3 and kinds["jobs"].entries > 3 * 5  # fields per job hash
    assert kinds["job counters"].keys == 4  # two totals, two minutes
    assert kinds["other"].keys == 1
    assert all(kind.memory > 0 for kind in space.kinds)
    assert space.keys == sum(kind.keys for kind in space.kinds)
    assert space.used_memory > sum(kind.memory for kind in space.kinds)
    order = [kind for _, kind in redis_keys.KINDS]
    assert [k.kind for k in space.kinds][:-1] == sorted(
        [k.kind for k in space.kinds][:-1], key=order.index
    )


def test_kinds_follow_rq_key_names():
    assert redis_keys.kind_of("rq:queue:default") == "queues"
    assert redis_keys.kind_of("rq:job:3c1d") == "jobs"
    assert redis_keys.kind_of("rq:wip:default") == "started registries"
    assert redis_keys.kind_of("rq:workers:default") == "workers"
    assert redis_keys.kind_of("rq:scheduler-lock:low") == "scheduler"
    assert redis_keys.kind_of("blog:metrics:minute:default:app.f:2026-12-04T18:30") == "metrics"
    assert redis_keys.kind_of("LIMITS:LIMITER/blog/1.2.3.4") == "rate limits"
    assert redis_keys.kind_of("session:42") == "other"


def test_the_command_and_the_page_show_kinds_but_no_values(
    app, live_redis, runner, client, auth, admin_id
):
    with app.app_context():
        enqueue(demo, 0, SECRET)
    output = runner.invoke(args=["jobs", "redis"]).output
    assert output.splitlines()[0].split() == ["kind", "keys", "entries", "memory"]
    assert any(line.split()[:3] == ["queues", "1", "1"] for line in output.splitlines())
    assert "the Redis server uses" in output
    auth.login("root@example.com")
    page = client.get("/admin/stats").text
    assert "What Redis holds" in page and "<td>queues</td>" in page
    for shown in (output, page):
        assert SECRET not in shown


def test_sizes_read_as_people_write_them():
    assert [redis_keys.human_bytes(n) for n in (None, 512, 1_234, 5_600_000, 7 * 10**9)] == [
        "unknown",
        "512 B",
        "1.2 kB",
        "5.6 MB",
        "7.0 GB",
    ]
