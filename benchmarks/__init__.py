"""Published content hashes of the frozen benchmarks: ``<id>.sha256`` (``sha256sum`` format),
checked by ``simfail check --benchmark <id> DIR``; see docs/benchmark.md."""
