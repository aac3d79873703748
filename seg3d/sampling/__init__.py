"""Training segments: class-balanced centres, two-scale extraction, augmentation."""
