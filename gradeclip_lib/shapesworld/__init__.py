"""What the book does with ShapesWorld, above the front door: train its models (CLIP, the ViT classifier,
BLIP), measure explanations against its known answers (zero-shot, binding, the pointing game, the misses),
and the ``python -m gradeclip_lib shapes`` commands that run them."""
