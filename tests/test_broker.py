"""The embedded broker (filesystem://, loupe.broker): a worker never sees a half-written message, and an unreadable
message does not stop it. kombu's own filesystem transport lost the suite's worker once on the first: the worker
read a message file between its creation and its write, failed to decode it and exited."""

import json
import logging
import threading
from queue import Empty

import pytest
from kombu import Connection

import loupe.celery  # noqa: F401 (points filesystem:// at loupe.broker, as every Loupe process does)
from loupe.broker import Transport


def _connection(folder):
    folder.mkdir(exist_ok=True)
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder)}
    return Connection("filesystem://", transport_options=options)


def test_the_filesystem_scheme_is_loupes_transport(tmp_path):
    with _connection(tmp_path / "queue") as connection:
        assert isinstance(connection.transport, Transport)


def test_a_worker_polling_while_a_message_is_being_written_does_not_see_it(tmp_path, monkeypatch):
    """The consumer polls exactly while the producer serializes the message into its file (after the file is
    opened, before a byte is written): it finds nothing, then the whole message."""
    import kombu.transport.filesystem

    import loupe.broker

    folder = tmp_path / "queue"
    seen_mid_write = []
    with _connection(folder) as producer, _connection(folder) as consumer:

        def dumps_while_polled(payload):
            try:
                seen_mid_write.append(consumer.default_channel._get("default"))
            except Empty:
                seen_mid_write.append("nothing")
            return json.dumps(payload)

        for module in (loupe.broker, kombu.transport.filesystem):
            monkeypatch.setattr(module, "dumps", dumps_while_polled)
        producer.default_channel._put("default", {"n": 1})
        assert seen_mid_write == ["nothing"]
        assert consumer.default_channel._get("default") == {"n": 1}


def test_a_consumer_polling_while_messages_are_written_gets_each_whole_and_once(tmp_path):
    """A producer writes 2,000 messages (large enough that a write is not instant) while a consumer takes them as
    fast as it can, as a worker would under load."""
    folder = tmp_path / "queue"
    count, body = 2000, "x" * 20_000
    received, errors = [], []
    done_writing = threading.Event()

    def consume() -> None:
        with _connection(folder) as connection:
            channel = connection.default_channel
            while len(received) < count:
                try:
                    received.append(channel._get("default"))
                except Empty:
                    if done_writing.is_set() and len(received) < count and not any(folder.glob("*.msg")):
                        return
                except Exception as exc:  # noqa: BLE001 (what the worker would die of)
                    errors.append(repr(exc))
                    return

    consumer = threading.Thread(target=consume)
    consumer.start()
    with _connection(folder) as connection:
        channel = connection.default_channel
        for i in range(count):
            channel._put("default", {"n": i, "body": body})
    done_writing.set()
    consumer.join(timeout=120)
    assert errors == []
    assert sorted(message["n"] for message in received) == list(range(count))
    assert all(message["body"] == body for message in received)
    assert list(folder.iterdir()) == []  # nothing half-written left behind


def test_an_unreadable_message_is_dropped_with_a_log_line_and_the_next_one_is_delivered(tmp_path, caplog):
    folder = tmp_path / "queue"
    with _connection(folder) as connection:
        channel = connection.default_channel
        # Alone in the folder, so it is the one taken whatever the clock puts in the names of the others.
        (folder / "0_broken.default.msg").write_bytes(b"")
        with caplog.at_level(logging.ERROR, logger="loupe.broker"), pytest.raises(Empty):
            channel._get("default")
        assert "unreadable message" in caplog.text
        channel._put("default", {"n": 1})
        assert channel._get("default") == {"n": 1}
        with pytest.raises(Empty):
            channel._get("default")


def test_messages_are_taken_in_the_order_they_were_sent_when_the_clock_gains_a_digit(tmp_path, monkeypatch):
    import loupe.broker

    folder = tmp_path / "queue"
    clock = iter([9.999, 10.000])  # seconds: 9999 then 10000 milliseconds
    monkeypatch.setattr(loupe.broker, "monotonic", lambda: next(clock))
    with _connection(folder) as connection:
        channel = connection.default_channel
        channel._put("default", {"n": 1})
        channel._put("default", {"n": 2})
        assert [channel._get("default"), channel._get("default")] == [{"n": 1}, {"n": 2}]


def test_messages_keep_kombus_file_format(tmp_path):
    """Workers and senders of one installation may mix versions during an upgrade: a message file is still one
    JSON document named `<ms>_<uuid>.<queue>.msg`."""
    folder = tmp_path / "queue"
    with _connection(folder) as connection:
        connection.default_channel._put("training", {"task": "t"})
    (path,) = folder.iterdir()
    assert path.name.endswith(".training.msg")
    assert json.loads(path.read_text()) == {"task": "t"}
