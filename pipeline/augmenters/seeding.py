"""Stable ids and per-row random streams.

Every augmented row draws its randomness from a generator keyed by a hash of
(seed, source_id, method, degree, copy), never from worker state, so a row's text and id are the
same whichever worker makes it and however the input is split.

Speed matters here: the job makes tens of thousands of rows per second, and seeding a Mersenne
Twister (`random.Random(int)`) cost ~6 µs a row, more than augmenting it. So a row's key is one
blake2b of (a cached per-stream prefix + the source id), and `RowRandom` draws its bits from
blake2b blocks of that key, in counter mode: seeding is free and the stream is fixed by the key.
"""

from __future__ import annotations

import functools
import hashlib
import random

from kdaug.schema import format_degree


def _digest(*parts: object) -> bytes:
    key = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


@functools.lru_cache(maxsize=4096)
def _stream_prefix(purpose: str, seed: int, method: str, degree: float, copy: int) -> bytes:
    """Everything of a row's key but its source id: the same for a whole chunk, so cached."""
    return f"{purpose}\x1f{seed}\x1f{method}\x1f{format_degree(degree)}\x1f{copy}\x1f".encode()


def _row_digest(purpose: str, seed: int, source_id: str, method: str, degree: float, copy: int) -> bytes:
    prefix = _stream_prefix(purpose, seed, method, degree, copy)
    return hashlib.blake2b(prefix + source_id.encode("utf-8"), digest_size=16).digest()


def row_id(seed: int, source_id: str, method: str, degree: float, copy: int) -> str:
    """The id of one output row: stable for the same input, config and seed."""
    return _row_digest("id", seed, source_id, method, degree, copy).hex()[:20]


def row_rng(seed: int, source_id: str, method: str, degree: float, copy: int) -> random.Random:
    """A random stream owned by one output row."""
    return RowRandom(_row_digest("rng", seed, source_id, method, degree, copy))


class RowRandom(random.Random):
    """`random.Random`'s methods (choice, sample, shuffle, betavariate, …) over a counter-mode
    blake2b stream of a 16-byte key: block i is blake2b(key, i) (64 bytes), read 512 bits at a time.

    Integers are drawn by `getrandbits` and rejection (Random's own `_randbelow`), so they are
    exactly uniform; `random()` takes 53 bits.
    """

    def seed(self, a: object = b"", version: int = 2) -> None:
        """Key the stream with the bytes `a` (Random.__init__ passes the row's key); there is no
        Mersenne Twister state, so `version` is unused and anything but bytes is refused."""
        if not isinstance(a, bytes | bytearray):
            raise TypeError(f"a RowRandom is keyed by bytes, not {type(a).__name__}")
        self._key, self._block, self._bits, self._left = bytes(a), 0, 0, 0

    def getrandbits(self, k: int) -> int:
        while self._left < k:
            block = hashlib.blake2b(self._block.to_bytes(8, "little"), digest_size=64, key=self._key).digest()
            self._bits |= int.from_bytes(block, "little") << self._left
            self._left += 512
            self._block += 1
        value = self._bits & ((1 << k) - 1)
        self._bits >>= k
        self._left -= k
        return value

    def _randbelow(self, n: int) -> int:
        """Random's `_randbelow_with_getrandbits` (same bits, same result) with the bit pool read
        inline: `choice`, `sample` and `shuffle` call it for every draw, and the inherited
        version's two Python calls per draw were a tenth of a row's augmentation time."""
        k = n.bit_length()
        while True:
            if self._left < k:
                value = self.getrandbits(k)
            else:
                value = self._bits & ((1 << k) - 1)
                self._bits >>= k
                self._left -= k
            if value < n:
                return value

    def random(self) -> float:
        return self.getrandbits(53) * 2.0**-53

    def getstate(self):
        return self._key, self._block, self._bits, self._left, self.gauss_next

    def setstate(self, state) -> None:
        self._key, self._block, self._bits, self._left, self.gauss_next = state
