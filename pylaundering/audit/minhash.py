"""MinHash signatures for the near-duplicate pass of `launder scan`: word n-grams and shingles, many
signatures at once with numpy, and the carrier that hands them to `datasketch.MinHashLSH`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from zlib import crc32

import numpy as np

__all__ = ["Carrier", "MinHasher", "ngrams", "shingles"]

_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)


def ngrams(words: Sequence[str], n: int):
    return zip(*[words[i:] for i in range(n)])


def shingles(words: Sequence[str], k: int) -> set[str]:
    return set(words) if k == 1 else set(map(" ".join, ngrams(words, k)))


class MinHasher:
    """MinHash signatures (datasketch's classic scheme: (a * h + b) mod (2^61 - 1), 32-bit), for
    many sets at once with numpy; shingles are hashed with CRC-32 of their UTF-8 bytes, so the
    signatures (and which near duplicates LSH proposes) are the same in every process."""

    def __init__(self, num_perm: int, seed: int):
        gen = np.random.RandomState(seed)
        self.a = gen.randint(1, int(_PRIME), size=num_perm, dtype=np.uint64)
        self.b = gen.randint(0, int(_PRIME), size=num_perm, dtype=np.uint64)
        self.num_perm = num_perm

    def signatures(self, shingle_sets: Sequence[Iterable[str]], chunk: int = 1 << 16) -> np.ndarray:
        """(len(shingle_sets), num_perm) uint64; every set must be non-empty.

        The shingle hashes of all sets are permuted `chunk` at a time (chunk x num_perm x 8 bytes,
        32 MiB by default), so a batch of long documents never needs more memory than that."""
        lengths = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
        flat = np.fromiter((crc32(x.encode("utf-8", "surrogatepass")) for s in shingle_sets for x in s),
                           dtype=np.uint64, count=int(lengths.sum()))
        owner = np.repeat(np.arange(len(lengths)), lengths)
        out = np.full((len(lengths), self.num_perm), _MAX_HASH, dtype=np.uint64)
        for start in range(0, len(flat), chunk):
            hv = flat[start: start + chunk, None]
            rows = owner[start: start + chunk]
            with np.errstate(over="ignore"):
                phv = (hv * self.a + self.b) % _PRIME
            phv &= _MAX_HASH
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            seg = rows[starts]  # distinct within a chunk
            out[seg] = np.minimum(out[seg], np.minimum.reduceat(phv, starts, axis=0))
        return out


class Carrier:
    """One datasketch MinHash whose `hashvalues` are set to each signature in turn: MinHashLSH reads
    only `hashvalues` (and the scheme), and building a MinHash draws its permutations anew each time
    (about 0.5 ms, more than the rest of a row's scan)."""

    def __init__(self, num_perm: int):
        from datasketch import MinHash

        zeros = np.zeros(num_perm, dtype=np.uint64)
        try:
            self.minhash = MinHash(hashvalues=zeros, permutations=(zeros, zeros), scheme="legacy")
        except TypeError:  # datasketch < 2.0: one scheme (the classic one), no `scheme` argument
            self.minhash = MinHash(hashvalues=zeros, permutations=(zeros, zeros))

    def __call__(self, hashvalues: np.ndarray):
        self.minhash.hashvalues = hashvalues
        return self.minhash
