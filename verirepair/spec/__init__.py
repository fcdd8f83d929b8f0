"""Properties: the model (:mod:`.property`) and VNN-LIB reading/writing (:mod:`.vnnlib`)."""
