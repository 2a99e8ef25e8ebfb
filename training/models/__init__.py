"""Model definitions: one builder per architecture, options explicit."""
