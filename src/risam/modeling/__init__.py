"""The model as ``nn.Module``s: the frozen encoders, the trainable head and the variants of the ablations.

:class:`risam.modeling.model.RISAM` walks the data path; :mod:`risam.modeling.build` assembles it from
the slots of :mod:`risam.modeling.slots`. Nothing here reads or writes files (that is :mod:`risam.io`).
"""
