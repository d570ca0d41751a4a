"""Methods for CLIP models with a ResNet image tower only: Grad-CAM on the last residual stage and M2IB on a
stage's cells. (Grad-ECLIP, RISE, the random map and the pool's attention are the adapter-wide ones.)"""

from . import grad_cam, m2ib  # noqa: F401  (importing a module registers its methods)
