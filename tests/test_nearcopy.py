"""Near-copy detection (harness/nearcopy.py): verified pairs only, the pairs brute force finds, same
answer in every process, and many scripts."""

import os
import random
import subprocess
import sys
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import nearcopy, safeguards
from harness.safeguards import Output

HASHER = nearcopy.Hasher(64)


def _sigs(texts):
    return HASHER.signatures((safeguards._shingles(t) for t in texts), len(texts))


def _brute(sig, threshold):
    n = len(sig)
    return {
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if nearcopy.similarity(sig[i], sig[j]) >= threshold
    }


def _found(sig, threshold, neighbours=len):
    pairs = set()
    for i, j in nearcopy.similar_pairs(
        sig,
        threshold=threshold,
        candidate_threshold=threshold - 0.15,
        neighbours=neighbours if isinstance(neighbours, int) else len(sig),
    ):
        pairs.update((min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist()))
    return pairs


WORDS = (
    "the a answer model question river stone 北京 東京 القاهرة ירושלים दिल्ली กรุงเทพ blue seven "
    "quickly"
).split()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25), min_size=2, max_size=40),
    st.data(),
)
def test_every_pair_returned_is_verified_and_the_close_ones_are_found(word_lists, data):
    # near copies made on purpose: a text and the same text with one word changed at the end
    texts = [" ".join(w) for w in word_lists]
    for k in data.draw(st.lists(st.integers(0, len(texts) - 1), max_size=5)):
        texts.append(" ".join(texts[k].split()[:-1] + ["changed"]))
    sig = _sigs(texts)
    found = _found(sig, 0.8)
    truth = _brute(sig, 0.8)
    assert found <= truth  # never a pair below the threshold
    # LSH may miss a pair just above the threshold; pairs at 0.9 or more are found (probability >
    # 0.9999)
    assert {p for p in truth if nearcopy.similarity(sig[p[0]], sig[p[1]]) >= 0.9} <= found


def test_a_large_cluster_of_templated_answers_is_found_with_few_neighbours():
    rng = random.Random(3)
    template = (
        "Thank you for your question. Here is a thorough answer that covers every angle "
        "and detail of it"
    )
    texts = [f"{template} number {k}" for k in range(1500)]
    varied = [
        " ".join(rng.choice(WORDS + [str(k)]) for _ in range(20)) + f" {k}" for k in range(300)
    ]
    sig = _sigs(texts + varied)
    in_pair = {i for p in _found(sig, 0.8, neighbours=8) for i in p}
    # brute force, a row at a time: which outputs have any other output at 0.8 or more
    close = {
        i for i in range(len(sig)) if (np.delete(nearcopy.similarity(sig, sig[i]), i) >= 0.8).any()
    }
    assert in_pair == close and len(close) > 1400  # every one found, with 8 neighbours per bucket
    assert not in_pair & set(range(1500, 1800))  # random texts are not near copies


def test_the_same_texts_give_the_same_signatures_in_another_process():
    code = (
        "import sys; from harness import nearcopy; h = nearcopy.Hasher(64); "
        "sys.stdout.write(h.signature([b'one two three', 'שלום עולם'.encode()]).tobytes().hex())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert (
        len(runs) == 1
        and runs.pop() == HASHER.signature([b"one two three", "שלום עולם".encode()]).tobytes().hex()
    )


def test_an_incremental_index_finds_what_was_inserted_and_not_what_was_not():
    index = nearcopy.Index(perms=128, candidate_threshold=0.4)
    h = nearcopy.Hasher(128)
    grams = lambda t: {t[i : i + 5].encode() for i in range(max(1, len(t) - 4))}  # noqa: E731
    index.insert(h.signature(grams("請問北京今天的天氣怎麼樣？我想出去走走。")))
    assert index.query(h.signature(grams("請問北京今天的天氣怎麼樣？我想出去走走")), 0.6)
    assert not index.query(h.signature(grams("ما هو أفضل وقت لزيارة القاهرة في الشتاء؟")), 0.6)
    assert not nearcopy.Index(perms=128, candidate_threshold=0.4).query(
        h.signature(grams("x")), 0.6
    )


def test_repeated_outputs_count_epochs_of_one_item_once_and_copies_across_items():
    same_item = [
        Output("i1", "A deterministic answer that repeats itself across epochs of one item.")
    ] * 5
    others = [
        Output(f"i{k}", f"A distinct answer {k} about {WORDS[k % len(WORDS)]} and {k * 7}")
        for k in range(2, 20)
    ]
    assert safeguards.repeated_outputs(same_item + others, 0.3)["count"] == 0
    copied = [
        Output("i40", "Copy of an answer given to another question entirely, word for word."),
        Output("i41", "Copy of an answer given to another question entirely, word for word!"),
    ]
    res = safeguards.repeated_outputs(same_item + others + copied, 0.3)
    assert res["count"] == 2 and res["item_ids"] == ["i40", "i41"]


def test_banding_puts_the_threshold_at_or_below_the_candidate_threshold():
    for threshold in (0.3, 0.4, 0.5, 0.65, 0.8):
        for perms in (64, 128):
            bands, rows = nearcopy.banding(threshold, perms)
            assert bands * rows <= perms and (1 / bands) ** (1 / rows) <= threshold
    assert np.all(
        nearcopy.band_keys(_sigs(["a b c"]), 12, 5) == nearcopy.band_keys(_sigs(["a b c"]), 12, 5)
    )


def test_an_index_crowded_by_a_templated_source_still_finds_copies_of_its_oldest_members():
    h = nearcopy.Hasher(128)
    grams = lambda t: {t[i : i + 5].encode() for i in range(max(1, len(t) - 4))}  # noqa: E731
    index = nearcopy.Index(perms=128, candidate_threshold=0.5)
    texts = [
        f"Please translate the following sentence into French for me, number {k}: the "
        f"{WORDS[k % len(WORDS)]} "
        f"is {k * 7919 % 100003} meters away"
        for k in range(3000)
    ]
    for t in texts:
        index.insert(h.signature(grams(t)))
    assert (
        max(len(members) for bucket in index.buckets for members in bucket.values())
        > 10 * nearcopy.BUCKET_RECENT
    )
    # reworded copies of the oldest members
    copies = [t.replace("Please", "Kindly") for t in texts[:200]]
    assert sum(index.query(h.signature(grams(t)), 0.6) for t in copies) == 200


def test_signatures_in_batches_are_each_sets_own_signature():
    """The batched form (hashes of many sets permuted at once, minima by reduceat) gives every set
    the MinHash of its own hashes, computed here directly: empty sets, one-shingle sets, and sets
    on both sides of the boundaries between batches."""
    hasher = nearcopy.Hasher(16)
    sets = [set(), {b"a"}, {b"x y z", b"y z w"}, {f"s{i}".encode() for i in range(20)}, set()]
    big = nearcopy.SHINGLE_CHUNK // 3 + 11
    for k in range(8):  # about three sets per batch, so batches end inside the list, not at its end
        sets += [{f"b{k} {i}".encode() for i in range(big)}, set(), {f"t{k}".encode()}]
    batched = hasher.signatures(iter(sets), len(sets))
    for k, shingles in enumerate(sets):
        h = np.array([zlib.crc32(s) for s in shingles] or [0], dtype=np.uint64)
        alone = [
            min((int(a) * x + int(b)) % 2**64 >> 32 for x in h.tolist())
            for a, b in zip(hasher.a, hasher.b)
        ]
        assert batched[k].tolist() == alone


def test_the_estimated_similarity_tracks_the_true_jaccard_similarity():
    """What the hash family must give: over many pairs of sets with a known Jaccard similarity, the
    share of equal signature positions averages to it (a biased family, e.g. one whose low bits
    repeat, would drift here), at 0.2, 0.5 and 0.8, for 128 functions."""
    hasher = nearcopy.Hasher(128)
    rng = random.Random(5)
    for target in (0.2, 0.5, 0.8):
        estimates = []
        for _ in range(60):
            shared = [f"s{rng.random()}".encode() for _ in range(int(200 * target))]
            rest = int(200 * (1 - target)) // 2
            a = shared + [f"a{rng.random()}".encode() for _ in range(rest)]
            b = shared + [f"b{rng.random()}".encode() for _ in range(rest)]
            truth = len(shared) / len(set(a) | set(b))
            estimates.append(nearcopy.similarity(hasher.signature(a), hasher.signature(b)) - truth)
        assert abs(np.mean(estimates)) < 0.02, (target, np.mean(estimates))
