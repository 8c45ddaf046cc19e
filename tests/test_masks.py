import numpy as np
import pytest

from risam.data.masks import AnnotationError, decode_segmentation, encode_mask


def test_rle_round_trip_and_polygon_union():
    mask = np.zeros((9, 11), dtype=bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(decode_segmentation(encode_mask(mask), 9, 11, "here"), mask)
    two = decode_segmentation([[0, 0, 3, 0, 3, 3, 0, 3], [6, 6, 9, 6, 9, 8, 6, 8]], 9, 11, "here")
    assert two[:3, :3].all() and two[6:8, 6:9].all() and two.sum() == 9 + 6


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e12, -1e9])
def test_polygons_with_wild_coordinates_are_refused_before_pycocotools(value):
    with pytest.raises(AnnotationError, match=r"instances\.json ann 7: polygon 0"):
        decode_segmentation([[0, 0, 5, 0, value, 5]], 10, 10, "instances.json ann 7")


def test_rle_of_another_size_is_refused():
    with pytest.raises(AnnotationError, match=r"RLE 'size' is \[3, 3\]"):
        decode_segmentation(encode_mask(np.ones((3, 3), bool)), 4, 4, "x")
