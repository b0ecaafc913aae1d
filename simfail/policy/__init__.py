"""Policies in the loop: the policy interface, the registry, shipped policies, rollouts."""

from simfail.policy.base import EpisodeContext, Policy, PolicyError, PolicyNeeds
from simfail.policy.registry import available_policies, load_policy, register_policy

__all__ = ["EpisodeContext", "Policy", "PolicyError", "PolicyNeeds", "available_policies", "load_policy",
           "register_policy"]
