import re
import time
import uuid
from itertools import pairwise

import pytest

from billfold.core import ids
from billfold.core.ids import PREFIXES, is_id, new_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def hex_part(value: str) -> str:
    return value.split("_", 1)[1]


class TestNewId:
    @pytest.mark.parametrize(("kind", "prefix"), sorted(PREFIXES.items()))
    def test_starts_with_the_prefix_of_its_kind_then_32_hex_digits(self, kind, prefix):
        value = new_id(kind)
        assert value.startswith(f"{prefix}_")
        assert HEX32.fullmatch(value.removeprefix(f"{prefix}_"))

    def test_every_kind_has_its_own_prefix(self):
        assert len(set(PREFIXES.values())) == len(PREFIXES)

    def test_refuses_an_unknown_kind(self):
        with pytest.raises(KeyError):
            new_id("invoice_thing")

    def test_is_a_version_7_uuid(self):
        digits = hex_part(new_id("customer"))
        assert digits[12] == "7"
        assert uuid.UUID(digits).version == 7

    def test_has_the_rfc_9562_variant_bits_10(self):
        for _ in range(200):  # the random bits next to the variant must never disturb it
            digits = hex_part(new_id("customer"))
            assert int(digits[16], 16) >> 2 == 0b10
            assert uuid.UUID(digits).variant == uuid.RFC_4122

    def test_begins_with_the_unix_time_in_milliseconds(self):
        before_ms = time.time_ns() // 1_000_000
        digits = hex_part(new_id("customer"))
        after_ms = time.time_ns() // 1_000_000
        # the generator may run a little ahead of the clock after a burst of ids
        assert before_ms <= int(digits[:12], 16) <= after_ms + 1_000

    def test_ids_made_in_sequence_are_strictly_increasing(self):
        values = [new_id("ledger_posting") for _ in range(10_000)]
        assert all(a < b for a, b in pairwise(values))

    def test_ids_are_unique(self):
        values = [new_id("customer") for _ in range(10_000)]
        assert len(set(values)) == len(values)

    def test_ids_stay_increasing_while_the_clock_stands_still(self, monkeypatch):
        frozen_ns = time.time_ns()
        monkeypatch.setattr(ids.time, "time_ns", lambda: frozen_ns)
        # more ids than the 12-bit counter holds in one millisecond
        values = [new_id("customer") for _ in range(10_000)]
        assert all(a < b for a, b in pairwise(values))
        assert all(HEX32.fullmatch(hex_part(v)) for v in values)

    def test_ids_stay_increasing_when_the_clock_goes_back(self, monkeypatch):
        first = new_id("customer")
        monkeypatch.setattr(ids.time, "time_ns", lambda: 1_000_000_000_000_000_000)  # 2001
        second = new_id("customer")
        third = new_id("customer")
        assert first < second < third


class TestIsId:
    @pytest.mark.parametrize("kind", sorted(PREFIXES))
    def test_accepts_a_new_id_of_its_kind(self, kind):
        assert is_id(kind, new_id(kind))

    def test_refuses_an_id_of_another_kind(self):
        assert not is_id("customer", new_id("tenant"))
        assert not is_id("tenant", new_id("customer"))
        assert not is_id("ledger_entry", new_id("ledger_posting"))

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "cus",
            "cus_",
            "cus_" + "0" * 31,
            "cus_" + "0" * 33,
            "cus_" + "0" * 31 + "g",
            "cus_" + "A" * 32,
            "CUS_" + "0" * 32,
            "cus-" + "0" * 32,
            "cus" + "0" * 32,
            "0" * 32,
            "xcus_" + "0" * 32,
            " cus_" + "0" * 32,
            "cus_" + "0" * 32 + " ",
            "cus_" + "0" * 32 + "\n",
            "cus_0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ],
        ids=repr,
    )
    def test_refuses_anything_that_is_not_prefix_underscore_32_hex(self, value):
        assert not is_id("customer", value)

    def test_accepts_a_hand_written_id_in_the_right_shape(self):
        assert is_id("customer", "cus_" + "0123456789abcdef" * 2)


def test_a_forked_child_does_not_reuse_its_parents_random_bits():
    import os

    ids.uuid7_hex()  # the parent now holds unused random bits
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, ids.uuid7_hex().encode())
        os._exit(0)
    os.close(write)
    from_child = os.read(read, 64).decode()
    os.waitpid(child, 0)
    os.close(read)
    # The low 62 bits are random: a child reusing the parent's buffer repeats them.
    assert from_child[-15:] != ids.uuid7_hex()[-15:]
