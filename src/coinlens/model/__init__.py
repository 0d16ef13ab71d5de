"""Model: backbone, training, embedding, checkpoints."""
