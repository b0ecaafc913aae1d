"""Counterfactuals from any trajectory (docs/counterfactuals.md).

* :mod:`~simfail.counterfactual.source`: :class:`SourceEpisode`, the episode a variant branches
  from (the scripted expert, a policy rollout, a replayed demonstration);
* :mod:`~simfail.counterfactual.edit`: :class:`Edit`, what a variant changes from its onset on;
* :mod:`~simfail.counterfactual.operators`: the generic, task-independent operators
  (gripper_release, action_offset, freeze, speedup, jitter, delay, truncate, push);
* :mod:`~simfail.counterfactual.replay`: :func:`branch`, which runs a variant on the scene runner.
"""
