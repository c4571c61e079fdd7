"""A toy spino plugin: the fusion ``stripes`` (spino_toy.fusion)."""
