"""SAM's postprocessing of mask logits written the direct way, whole maps at once: the reference that
:func:`risam.data.transforms.logits_to_masks` (bands of rows, thresholded in logit space) is tested against."""

import torch
import torch.nn.functional as F


def postprocess_logits(
    logits: torch.Tensor, size: int, resized: tuple[int, int], original: tuple[int, int]
) -> torch.Tensor:
    """Mask logits of one sample, h' x w' (any scale of the padded input) -> H x W at ``original``.

    Bilinear upsampling to size x size, crop to the ``resized`` content, bilinear resize to
    the ``original`` (H, W). Threshold the sigmoid of the result for a mask.
    """
    full = F.interpolate(logits[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    content = full[..., : resized[0], : resized[1]]
    return F.interpolate(content, size=original, mode="bilinear", align_corners=False)[0, 0]
