"""Policies that act in simfail's scenes (``reset(seed)``, ``act(observation) -> (8,) action``).

* :mod:`.bc` - ``make_bc_policy(checkpoint)``: behaviour cloning trained by ``simfail train-policy``.
* :mod:`.evaluate` - ``evaluate_policy(policy, task, seeds)``: closed-loop success and failure labels.
"""
