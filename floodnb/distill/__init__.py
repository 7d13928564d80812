"""Teachers, students and baselines of cross-modal distillation (Garg et al. 2023), on plain torch.

One library function per method — import them from their modules (torch is imported there, not here):

* :func:`floodnb.distill.teacher.train_teacher`, :func:`floodnb.distill.teacher.label_pool` (pool targets
  cloud-masked; teacher quality clear vs cloud: :mod:`floodnb.distill.pool_quality`)
* :func:`floodnb.distill.student.train_student`
* :func:`floodnb.distill.baselines.train_baseline`, :func:`floodnb.distill.baselines.otsu_baseline`
* :func:`floodnb.distill.evaluate.evaluate`
* the engine: :func:`floodnb.distill.engine.fit`, :class:`floodnb.distill.engine.TrainConfig`
"""
