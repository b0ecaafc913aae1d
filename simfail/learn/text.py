"""Instruction embedding without downloads: a hashed bag of word n-grams.

Words are lower-cased runs of letters and digits. Every n-gram (``n = 1..ngrams``) is hashed
with CRC-32 (stable across processes and platforms, unlike Python's ``hash``) into one of
``dim`` buckets with a hashed sign; the vector is L2-normalised. The embedding is fully
described by ``(dim, ngrams)``, so a checkpoint needs no vocabulary file.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from simfail.errors import ConfigError

__all__ = ["HashedText", "tokenize"]

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (runs of ``[a-z0-9]``)."""
    return _WORD.findall(str(text).lower())


class HashedText:
    """``embed(text) -> float32 (dim,)``: signed hashed counts of word 1..``ngrams``-grams."""

    def __init__(self, dim: int = 64, ngrams: int = 2) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"text dim must be a positive integer, got {dim!r}")
        if isinstance(ngrams, bool) or not isinstance(ngrams, int) or ngrams < 1:
            raise ConfigError(f"text ngrams must be a positive integer, got {ngrams!r}")
        self.dim, self.ngrams = dim, ngrams

    def config(self) -> dict[str, int]:
        return {"dim": self.dim, "ngrams": self.ngrams}

    def embed(self, text: str) -> np.ndarray:
        words = tokenize(text)
        v = np.zeros(self.dim, dtype=np.float32)
        for n in range(1, self.ngrams + 1):
            for i in range(len(words) - n + 1):
                h = zlib.crc32(" ".join(words[i : i + n]).encode("utf-8"))
                v[h % self.dim] += 1.0 if (h >> 31) & 1 == 0 else -1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def embed_many(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
