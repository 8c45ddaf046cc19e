"""Pretraining of the tiny encoders (the SAM and CLIP stand-ins of ``risam_tiny``) on generated RefShapes.

:mod:`.scenes` turns generated scenes into tensors, :mod:`.image` pretrains the image encoder with
dense supervision, :mod:`.text` aligns the text encoder with it, and :mod:`.command` runs both and
writes the weights file that ships in the package.
"""
