"""View models for the portal's pages: plane data turned into rows (pure)."""
