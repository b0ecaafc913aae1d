"""Real robot rollouts with human labels, imported next to simfail's synthetic data.

* :mod:`simfail.dataset.real.mapping`: the declared mapping (YAML) from a release's fields to
  simfail's episode columns; ready mappings ship in ``simfail/dataset/real/mappings/``.
* :mod:`simfail.dataset.real.sources`: readers of a RoboArena dump and of a LeRobot v3 dataset.
* :mod:`simfail.dataset.real.importer`: ``simfail import-real``: validate, then write a simfail
  dataset (``simfail.source=real``) whose videos are the release's own files, linked or copied.
"""

from .mapping import RealMapping, load_mapping, shipped_mapping

__all__ = ["RealMapping", "load_mapping", "shipped_mapping"]
