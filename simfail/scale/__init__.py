"""Scale-out: executors (local, Ray), sharded generation, GPU selection."""
