"""Optional realism pass: edit a simfail dataset's videos with a structure-conditioned video
diffusion model (``simfail realism data=DIR out=DIR2 model=PATH``).

Modules, one job each:

* :mod:`~simfail.realism.conditioning` - depth / segmentation / edge maps rendered from the
  stored ``sim.qpos`` of every frame (the scene is rebuilt from ``meta/simfail.json``).
* :mod:`~simfail.realism.prompts` - text prompts per scene from the task and its objects.
* :mod:`~simfail.realism.pipeline` - loading a local diffusers pipeline (Wan2.1-VACE) and
  running it over frame chunks on a device / dtype, ``batch_size`` chunks denoised together.
* :mod:`~simfail.realism.batching` - edit requests and how they are batched.
* :mod:`~simfail.realism.fidelity` - does the failure stay visible (in place and in time) after
  the edit?
* :mod:`~simfail.realism.calibrate` - threshold calibration from appearance-preserving and
  failure-destroying edits of a real dataset (``python -m simfail.realism.calibrate``).
* :mod:`~simfail.realism.edit` - the dataset-to-dataset pass (batched, resumable);
  :mod:`~simfail.realism.commands` - the command line.

Only :mod:`~simfail.realism.pipeline` imports torch / diffusers (lazily).
"""
