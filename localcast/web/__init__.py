"""Web pages served by the control plane (the watch page; the partner portal later)."""
