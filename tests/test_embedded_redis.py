from devtools.embedded_redis import EmbeddedRedis


def test_with_a_data_dir_the_data_survives_a_restart(tmp_path):
    server = EmbeddedRedis(data_dir=tmp_path).start()
    with server.client() as client:
        client.set("queued", "job")
    server.stop()
    again = EmbeddedRedis(port=server.port, data_dir=tmp_path).start()
    try:
        with again.client() as client:
            assert client.get("queued") == b"job"
    finally:
        again.stop()


def test_without_one_it_keeps_nothing(tmp_path):
    server = EmbeddedRedis().start()
    with server.client() as client:
        client.set("queued", "job")
    server.stop()
    again = EmbeddedRedis(port=server.port).start()
    try:
        with again.client() as client:
            assert client.get("queued") is None
    finally:
        again.stop()
