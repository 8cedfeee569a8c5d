"""COCO caption-format reference files (what pycocotools COCO / COCOEvalCap load)."""
from __future__ import annotations


def coco_caption_file(items: list[tuple[str, list[str]]]) -> dict:
    """{"images": [{"id"}], "annotations": [{"id", "image_id", "caption"}]} from
    (image_id, captions) pairs, in the given order; annotation ids count from 1."""
    images, annotations = [], []
    for image_id, captions in items:
        images.append({"id": image_id})
        for cap in captions:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "caption": cap})
    return {"info": {}, "licenses": [], "type": "captions", "images": images, "annotations": annotations}
