from pathlib import Path

import pytest

from billfold.core.errors import NotFound
from billfold.core.filestore import FileStore, UnsafeFileKey

KEY = "tenants/ten_1/test/invoices/inv_1.pdf"


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "var")


class TestPutAndGet:
    def test_gives_back_what_was_put_creating_the_folders(self, store):
        store.put(KEY, b"%PDF-1.7")

        assert store.get(KEY) == b"%PDF-1.7"
        assert store.exists(KEY)
        assert store.path(KEY) == store.root / "tenants" / "ten_1" / "test" / "invoices" / "inv_1.pdf"

    def test_a_second_put_replaces_the_file_and_leaves_no_temporary_file(self, store):
        store.put(KEY, b"first")
        store.put(KEY, b"second")

        assert store.get(KEY) == b"second"
        assert [p.name for p in store.path(KEY).parent.iterdir()] == ["inv_1.pdf"]

    def test_a_failed_write_keeps_the_old_file_and_cleans_up(self, store):
        store.put(KEY, b"old")

        with pytest.raises(TypeError):
            store.put(KEY, "not bytes")  # type: ignore[arg-type]

        assert store.get(KEY) == b"old"
        assert [p.name for p in store.path(KEY).parent.iterdir()] == ["inv_1.pdf"]

    def test_a_missing_file_is_not_found(self, store):
        assert not store.exists(KEY)
        with pytest.raises(NotFound, match=r"inv_1\.pdf"):
            store.get(KEY)


class TestKeys:
    @pytest.mark.parametrize("key", [
        "/etc/passwd", "../outside.txt", "tenants/../../outside.txt", "tenants//x.pdf",
        "tenants/./x.pdf", "tenants/", "", "tenants\\x.pdf", "x\0.pdf",
    ])
    def test_refuses_a_key_that_is_not_a_plain_relative_path(self, store, key):
        with pytest.raises(UnsafeFileKey):
            store.put(key, b"x")
        with pytest.raises(UnsafeFileKey):
            store.get(key)

        assert not (store.root.parent / "outside.txt").exists()

    def test_allows_dots_inside_names(self, store):
        store.put("mail/msg_1.eml", b"x")
        store.put("a/..b/c..", b"y")

        assert store.get("a/..b/c..") == b"y"
