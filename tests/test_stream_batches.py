"""The fold of stream batches: the NumPy fold (large batches) and the plain-Python fold (small ones) give the same
bytes on randomized entries with duplicate keys, ties on bucket edges, late, null, deleted and malformed entries."""

import random
import struct

import pytest

from resources.stream_batches import SMALL_BATCH, StreamSpec, fold_entries
from tests.streaming_views import driver_trips_live as VIEW

SPEC = StreamSpec.of(VIEW)
BASE_US = 1_780_000_000 * 10**6


def random_entries(seed: int, count: int) -> list[tuple[bytes, object]]:
    """Return entries as XREADGROUP gives them: flat field lists (any order), mappings, deleted (None) entries."""
    rng = random.Random(seed)
    step = SPEC.step_us
    entries = []
    for index in range(count):
        entry_ms = BASE_US // 1000 + index // 3
        entry_id = f"{entry_ms}-{index % 3}".encode()
        if rng.random() < 0.04:
            entries.append((entry_id, None))
            continue
        event = BASE_US - rng.choice([0, 1, step, 2 * step, rng.randrange(6 * step)])
        fields: dict[bytes, bytes] = {
            b"k": rng.choice(
                [b"i:1", b"i:2", b"i:3", b"s:a%7Cb", b"", b"\xff"] if rng.random() < 0.1 else [b"i:1", b"i:2", b"i:3"]
            ),
            b"t": str(event).encode() if rng.random() > 0.03 else b"yesterday",
        }
        if rng.random() < 0.7:
            fields[b"a"] = str(event + rng.choice([0, 5, SPEC.lateness_us, SPEC.lateness_us + 1])).encode()
        if rng.random() < 0.85:
            fields[b"fare"] = rng.choice(
                [str(rng.randrange(-40, 400) / 4).encode(), b"", b"2.5"] + [b"nan", b"x"] * (rng.random() < 0.05)
            )
        if rng.random() < 0.8:
            fields[b"trip"] = b"t"
        if rng.random() < 0.1:
            entries.append((entry_id, fields))
            continue
        items = list(fields.items())
        if rng.random() < 0.1:
            rng.shuffle(items)
        entries.append((entry_id, [part for item in items for part in item]))
    return entries


@pytest.mark.parametrize("seed", range(60))
def test_numpy_and_python_folds_give_the_same_bytes(seed):
    rng = random.Random(seed)
    entries = random_entries(seed, rng.choice([1, 2, 5, SMALL_BATCH, 200]))
    cut = rng.choice([0, BASE_US - 2 * SPEC.step_us, BASE_US - SPEC.step_us + 5])
    vectorized = fold_entries(SPEC, entries, vectorized=True, cut=cut)
    plain = fold_entries(SPEC, entries, vectorized=False, cut=cut)
    assert vectorized == plain
    assert len(vectorized.ids) + len(vectorized.invalid) == len(entries)


def test_a_fold_counts_late_and_invalid_entries_and_packs_one_record_per_entity_and_bucket():
    step = SPEC.step_us
    entries = [
        (b"1-0", [b"k", b"i:1", b"t", str(BASE_US).encode(), b"a", str(BASE_US).encode(), b"fare", b"2.5"]),
        (b"1-1", [b"k", b"i:1", b"t", str(BASE_US - step).encode(), b"a", str(BASE_US).encode(), b"fare", b"1.5"]),
        (b"1-2", [b"k", b"i:1", b"t", str(BASE_US - step - 1).encode(), b"fare", b"inf"]),
        (b"1-3", [b"k", b"i:2", b"t", str(BASE_US - 10**12).encode(), b"a", str(BASE_US).encode()]),
        (b"1-4", None),
    ]
    for vectorized in (True, False):
        fold = fold_entries(SPEC, entries, vectorized=vectorized)
        assert fold.ids == [b"1-0", b"1-1", b"1-3", b"1-4"] and fold.invalid == [b"1-2"]
        late, invalid, missing, covered, cut, newest, entity_count, heads, records, *keys = fold.arguments
        assert (late, invalid, missing, covered, cut) == (1, 1, 1, 0, 0)
        assert (newest, entity_count, keys) == (BASE_US, 1, [b"i:1"])
        width = len(records) // 8 // 2
        first, second = (
            struct.unpack(f"<{width}d", records[: width * 8]),
            struct.unpack(f"<{width}d", records[width * 8 :]),
        )
        assert struct.unpack("<3d", heads) == (BASE_US // step, BASE_US, 2)
        assert (first[:4], second[:4]) == (
            (-(-(BASE_US - step) // step), 1, BASE_US - step, 1),
            (-(-BASE_US // step), 1, BASE_US, 1),
        )


def test_entries_that_arrived_by_the_cut_are_acknowledged_and_counted_not_folded():
    step = SPEC.step_us
    entries = [
        (b"1-0", [b"k", b"i:1", b"t", str(BASE_US - step).encode(), b"a", str(BASE_US - step).encode(), b"fare", b"1"]),
        (b"1-1", [b"k", b"i:1", b"t", str(BASE_US).encode(), b"a", str(BASE_US).encode(), b"fare", b"2"]),
    ]
    for vectorized in (True, False):
        fold = fold_entries(SPEC, entries, vectorized=vectorized, cut=BASE_US - step)
        late, invalid, missing, covered, cut, newest, entity_count, heads, records, *keys = fold.arguments
        assert fold.ids == [b"1-0", b"1-1"]
        assert (late, covered, cut, newest, entity_count) == (0, 1, BASE_US - step, BASE_US, 1)
        assert struct.unpack("<3d", heads) == (BASE_US // step, BASE_US, 1)
