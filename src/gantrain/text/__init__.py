"""Caption encoders for text-to-image families: learned (pretrained here), sentence-transformers, precomputed."""
