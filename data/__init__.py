"""Face record sets: format, builders, augmentation and the training iterator."""
