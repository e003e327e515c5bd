import threading

from billfold.core.config import Settings, instance_key


def test_the_installation_key_is_made_once_and_read_whole_by_everyone_racing_for_it(tmp_path):
    # serve's app and its worker thread both ask at start-up: nobody may read a key file
    # its writer has not filled yet.
    for attempt in range(20):
        settings = Settings(data_dir=tmp_path / str(attempt), secret_key=None)
        start = threading.Barrier(8)
        keys: list[bytes] = []

        def ask(settings: Settings = settings, start: threading.Barrier = start,
                keys: list[bytes] = keys) -> None:
            start.wait()
            keys.append(instance_key(settings))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(keys) == 8
        assert len(set(keys)) == 1
        assert len(keys[0]) >= 32
        assert sorted(p.name for p in (tmp_path / str(attempt)).iterdir()) == ["secret.key"]


def test_a_configured_key_wins(tmp_path):
    assert instance_key(Settings(data_dir=tmp_path, secret_key="s3cret")) == b"s3cret"


def test_worker_threads_are_read_under_their_name_and_their_earlier_one(monkeypatch):
    monkeypatch.delenv("BILLFOLD_WORKER_THREADS", raising=False)
    monkeypatch.setenv("BILLFOLD_RENDER_THREADS", "3")
    assert Settings().worker_threads == 3
    monkeypatch.setenv("BILLFOLD_WORKER_THREADS", "5")
    assert Settings().worker_threads == 5  # the current name wins
    assert Settings(worker_threads=4).worker_threads == 4
