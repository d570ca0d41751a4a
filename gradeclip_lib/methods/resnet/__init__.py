"""Methods for CLIP models with a ResNet image tower, registered in `RESNET_METHODS` behind the same
interface as the ViT methods (RISE and the random map serve both towers)."""

from . import attention, grad_cam, grad_eclip, m2ib  # noqa: F401  (importing a module registers its methods)
