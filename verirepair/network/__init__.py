"""Networks: the immutable model (:mod:`.model`) and file formats (ONNX, .nnet, torch)."""
