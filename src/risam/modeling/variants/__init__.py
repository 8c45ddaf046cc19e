"""The paper's ablation and baseline modules (docs/ablations.md), registered by name in ``modeling/slots.py``.

Each file holds one component; each fusion module takes and returns what a Mutual-Aware
Attention block does, each enhancement what Feature Enhancement does, and the SAM decoder
what the Mutual-Aware Mask Decoder does, so that :class:`risam.modeling.model.RISAM` runs
any combination unchanged.
"""
