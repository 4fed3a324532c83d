"""One module per portal page (or small family of pages), each with its ``router``."""
