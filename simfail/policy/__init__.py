"""Policies in the loop: the policy interface, the registry, shipped policies, rollouts.

* :mod:`.bc` - ``make_bc_policy(checkpoint)`` (registered as ``bc``): behaviour cloning trained by
  ``simfail train-policy``.
* :mod:`.evaluate` - ``evaluate_policy(policy, task, seeds)``: closed-loop success and failure labels.
"""

from simfail.policy.base import EpisodeContext, Policy, PolicyError, PolicyNeeds
from simfail.policy.registry import available_policies, load_policy, register_policy

__all__ = ["EpisodeContext", "Policy", "PolicyError", "PolicyNeeds", "available_policies", "load_policy",
           "register_policy"]
