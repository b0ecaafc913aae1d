"""``simfail replay``: external demonstrations replayed in simfail's scenes.

- :mod:`simfail.replay.demos`: the demo dataset contract (a LeRobot v3 dataset whose episodes
  carry an 8-wide ``action`` column, a task and a scene seed) and its reader.
- :mod:`simfail.replay.verify`: replays one demo on the :class:`~simfail.core.runner.SceneRunner`
  and checks it against the demo's ``sim.qpos`` where it has one.
- :mod:`simfail.replay.recorder`: writes such a dataset from the Gymnasium env (teleoperation,
  scripts) or from bare action arrays.
- :mod:`simfail.replay.command`: the ``simfail replay`` command (groups: the demo as reference,
  counterfactual variants branched from it).
"""
