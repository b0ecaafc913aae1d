"""Learned reward models trained on simfail's own renders (no downloaded weights).

The ReWiND-style baseline (``simfail train-reward``, stress model ``rewind``):

* :mod:`.text` - instruction embedding: a hashed bag of word n-grams (no vocabulary file,
  no download).
* :mod:`.encoder` - a small CNN image encoder trained from scratch.
* :mod:`.model` - per-frame progress head (frame features + instruction -> causal GRU ->
  progress in ``[0, 1]``).
* :mod:`.data` - training clips from a dataset: forward clips and ReWiND "rewound" negatives.
* :mod:`.train` - the training loop (deterministic on CPU for a given seed).
* :mod:`.checkpoint` - self-describing checkpoints (config + state_dict), atomic writes.
* :mod:`.paired` - paired bootstrap of the accuracy difference of two reports over contexts.
* :mod:`.commands` - ``simfail train-reward key=value ...``.

Everything that needs ``torch`` imports it lazily; ``pip install simfail[learn]`` provides it.
"""

from __future__ import annotations

__all__ = ["require_torch"]


def require_torch():
    """Import and return ``torch`` or raise a :class:`~simfail.errors.ConfigError` telling how to install it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed in the test environment
        from simfail.errors import ConfigError

        raise ConfigError("the rewind reward model needs torch: pip install 'simfail[learn]'") from exc
    return torch
